"""Exploratory analysis of the raw CDRs over a date range (`config/query_params.json`).

`python -m eda` reads `DP_CDR_Data` (`db.eda_queries`), computes statistics (`eda.summary`,
`eda.analysis`), draws figures (`eda.plots`) and writes a Markdown report (`eda.report`).
"""
