-- Each monitoring run keeps its chunks' health verdicts (MonitoringResult.verdicts), so the
-- service's /metrics and the dashboard read the latest verdict without recomputing it:
-- a JSON list of {"chunk", "verdict", "reasons"} in chunk order; NULL for failed runs and
-- for runs stored before this migration.
ALTER TABLE monitoring_runs
    ADD COLUMN IF NOT EXISTS verdicts JSON NULL
    COMMENT 'per chunk: {chunk, verdict, reasons}, see MonitoringResult.verdicts'
    AFTER alerts;
