"""Connection limits that hold across runs and workers, kept by the Prefect server."""

from __future__ import annotations

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.run.limits import ConnectionLimits


def connection_limits(settings: Settings) -> ConnectionLimits | None:
    """The limits of ``settings``' connections, shared through Prefect (none yet)."""
    return None
