"""Label-free monitoring of the churn model's predictions with NannyML, by layer.

- `monitoring.compute`: the pure computation (CBPE estimates, realized performance, drift,
  data quality per chunk) and its typed result;
- `monitoring.pipeline`: runs on stored predictions (runner, poller) and the file mode's reader;
- `monitoring.report`: the figures, shared with the dashboard, and the report files;
- `monitoring.web`: the service: app factory, API views, Prometheus metrics, dashboard.
"""
