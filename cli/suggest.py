"""Find the KR a command names, with "did you mean" for a name that matches none.

Every command that takes a KR (``explain``, ``history``, ``alerts --kr``, ``silence``)
resolves it here, so a typo gets the same answer everywhere:
``No key result named 'weekly-listners'. Did you mean 'grow-listening/weekly-listens'?``.
The hint is :func:`okr_core.words.suggest`'s, shared with check-ins, formulas and the
dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from okr_pipeline.okr_core.words import close_names, suggest

if TYPE_CHECKING:  # the store and its SQLAlchemy models load when a command reads them
    from okr_pipeline.okr_store.records import StoredKeyResult

__all__ = ["close_names", "complete_kr", "did_you_mean", "resolve_kr"]


def did_you_mean(name: str, key_results: Sequence[StoredKeyResult]) -> str:
    """The hint for a KR name that matches none (:func:`okr_core.words.suggest` over the refs)."""
    return suggest(name, [kr.ref for kr in key_results])


def resolve_kr(name: str, key_results: Sequence[StoredKeyResult]) -> StoredKeyResult:
    """The KR called ``name`` (``objective/kr``, or its id where unique).

    Raises:
        ConfigError: no KR answers to ``name`` (with the closest names), or several do.
    """
    from okr_pipeline.run.select import resolve_name

    return resolve_name(name, key_results)


def complete_kr(incomplete: str) -> list[str]:
    """Shell completion of a KR argument: the refs (and unique ids) of the store in ``.``.

    Completion must never fail loudly: with no store, or an unreadable one, it offers nothing.
    """
    from pathlib import Path

    from okr_pipeline.okr_core.settings import load_settings
    from okr_pipeline.okr_store.db import open_engine_to_read
    from okr_pipeline.okr_store.store import Store

    try:
        store = Store(open_engine_to_read(load_settings(Path(".")).resolved_store_url()))
        try:
            krs = store.active_key_results()
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - no store, no settings: nothing to offer
        return []
    keys = [kr.kr_key for kr in krs]
    names = [kr.ref for kr in krs] + [key for key in keys if keys.count(key) == 1]
    return sorted(name for name in set(names) if name.startswith(incomplete))
