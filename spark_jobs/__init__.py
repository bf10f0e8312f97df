"""PySpark jobs of the pipeline: analysis (raw CDRs -> Processed_Data), churn model, scoring."""
