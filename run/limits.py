"""Bounds on each connection's load that hold across runs and workers.

:func:`okr_pipeline.run.fetch.fetch_all` asks a :class:`ConnectionLimits` before it uses a
connection: the Prefect flow passes one backed by Prefect's global concurrency limits
(``flows/limits.py``), so the bound holds over every run and worker that share a Prefect
server. Without one, a connection's ``max_concurrency`` holds within the run only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class ConnectionLimits(Protocol):
    """How a run takes its share of a connection's limits (shared with other runs)."""

    def slot(self, key: str) -> AbstractContextManager[None]:
        """Hold one of the connection's concurrency slots for the block's duration.

        Args:
            key: The source's concurrency key (``sql:warehouse``, ``http:analytics``).
        """
        ...
