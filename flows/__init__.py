"""The Prefect layer of okr-pipeline: flows, tasks, deployments and server helpers.

The only package that imports Prefect; the run itself lives in ``okr_pipeline.run``.
"""
