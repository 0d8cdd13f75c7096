"""Find the KR a command names, with "did you mean" for a name that matches none.

Every command that takes a KR (``explain``, ``history``, ``alerts --kr``, ``silence``)
resolves it here, so a typo gets the same answer everywhere:
``No key result named 'weekly-listners'. Did you mean 'grow-listening/weekly-listens'?``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from okr_pipeline.okr_core.errors import ConfigError

if TYPE_CHECKING:  # the store and its SQLAlchemy models load when a command reads them
    from okr_pipeline.okr_store.records import StoredKeyResult

#: How alike a name must be to be suggested (difflib's ratio, 0 to 1): a typo or two in
#: an id, not another KR of the same objective (``growth/revenu`` is not ``growth/signups``).
CUTOFF = 0.75
#: At most this many suggestions.
SHOWN = 3


def close_names(name: str, known: Iterable[str], *, shown: int = SHOWN) -> list[str]:
    """The known names most like ``name``, best first (none when nothing is close)."""
    return difflib.get_close_matches(name, list(dict.fromkeys(known)), n=shown, cutoff=CUTOFF)


def did_you_mean(name: str, key_results: Sequence[StoredKeyResult]) -> str:
    """`` Did you mean 'a/b'?`` for the KRs whose ref or id is close to ``name``, or ``""``.

    A bare id that is close suggests the KR's full ref, which always answers.
    """
    by_key: dict[str, list[str]] = {}
    for kr in key_results:
        by_key.setdefault(kr.kr_key, []).append(kr.ref)
    names = close_names(name, [*by_key, *(kr.ref for kr in key_results)])
    refs: list[str] = []
    for found in names:
        for ref in by_key.get(found, [found]):
            if ref not in refs:
                refs.append(ref)
    refs = refs[:SHOWN]
    if not refs:
        return ""
    if len(refs) == 1:
        return f" Did you mean '{refs[0]}'?"
    return " Did you mean " + ", ".join(f"'{ref}'" for ref in refs[:-1]) + f" or '{refs[-1]}'?"


def resolve_kr(name: str, key_results: Sequence[StoredKeyResult]) -> StoredKeyResult:
    """The KR called ``name`` (``objective/kr``, or its id where unique).

    Raises:
        ConfigError: no KR answers to ``name`` (with the closest names), or several do.
    """
    from okr_pipeline.run.select import resolve_name

    try:
        return resolve_name(name, key_results)
    except ConfigError as exc:
        if any(kr.kr_key == name for kr in key_results):
            raise  # an id in several objectives: the message lists them
        hint = did_you_mean(name, key_results)
        if not hint:
            raise
        raise ConfigError(f"No key result named '{name}'.{hint} 'okr status' lists them.") from exc


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
