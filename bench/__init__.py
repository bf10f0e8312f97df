"""Benchmarks: each script prints its figures side by side and ends with one JSON line."""
