"""Alerting on KRs, the way monitoring systems learned to do it (Grafana, Alertmanager).

Pure: state machine, routing and message grouping; no I/O, no SQLAlchemy, no Prefect.
"""
