"""The monitoring computation: pure functions of prediction frames, a column mapping and a
chunking, returning a typed `MonitoringResult`. No database, no files, no HTTP."""
