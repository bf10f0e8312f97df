"""Monitoring runs: from the database (`runner`, and `poller` when new predictions land) and
from prediction files (`files`)."""
