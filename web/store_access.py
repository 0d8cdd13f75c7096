"""The dashboard's store: opened on the first request that needs it, never created by it.

A dashboard is a reader: pointed at a project with no store yet it says so (and how to make
one) instead of creating an empty ``.okr/okr.db``. Once a run has made the store, the next
request opens it.
"""

from __future__ import annotations

import threading

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.redaction import mask_url
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.db import StoreNotReadyError, open_engine_to_read
from okr_pipeline.okr_store.store import Store

__all__ = ["NoStoreError", "StoreAccess"]


class NoStoreError(ConfigError):
    """The project has no store yet (nothing has run)."""


class StoreAccess:
    """One store per app, opened lazily and closed with the app.

    Args:
        settings: Whose ``store_url`` to open.
    """

    def __init__(self, settings: Settings) -> None:
        self._url = settings.resolved_store_url()
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        """The open store.

        Raises:
            NoStoreError: No store there yet, or one that needs ``okr db upgrade``.
            okr_core.errors.StoreUnavailableError: The store cannot be reached.
        """
        if self._store is not None:
            return self._store
        with self._lock:
            if self._store is None:
                try:
                    engine = open_engine_to_read(self._url)
                except StoreNotReadyError as exc:
                    if exc.missing:
                        raise NoStoreError(
                            f"No store yet at {mask_url(self._url)}: run 'okr run' (or "
                            "'okr demo') in the project first; this page shows it then."
                        ) from exc
                    raise NoStoreError(f"{exc}") from exc
                self._store = Store(engine)
            return self._store

    def close(self) -> None:
        """Release the store's connections (if it was opened)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
