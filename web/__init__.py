"""Where people look: the dashboard (``okr ui``), its JSON API and the shareable report.

Reads the store; writes only check-ins and notes, through :mod:`okr_pipeline.run`. No Prefect.
"""
