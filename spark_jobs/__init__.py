"""PySpark analysis, model and scoring jobs (next stage)."""
