"""Exploratory analysis of the CDRs over config/query_params.json (next stage)."""
