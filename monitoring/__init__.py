"""NannyML performance estimation, drift detection and the monitoring service (later stage)."""
