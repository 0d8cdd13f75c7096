"""One update run, Prefect-free: select → fetch → evaluate → store → alert step.

The Prefect flow (``okr_pipeline.flows.update``) drives these steps as tasks; tests and
other drivers call them directly.
"""
