"""The monitoring service: app factory and serving (`app`), the API (`views`), Prometheus
metrics (`metrics`) and the dashboard (`dashboard`)."""
