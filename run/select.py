"""Choose which key results a run measures: the ones named, or the ones whose schedule is due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cronsim import CronSim

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.words import suggest
from okr_pipeline.okr_store.records import StoredKeyResult


def is_due(schedule: str, last_as_of: datetime | None, as_of: datetime) -> bool:
    """True when the cron ``schedule`` fired between the last measured as-of and ``as_of``."""
    if last_as_of is None:
        return True
    # cronsim iterates in the datetime's own zone; schedules are read in UTC.
    start = last_as_of.astimezone(UTC).replace(tzinfo=None)
    next_fire = next(CronSim(schedule, start))
    return next_fire <= as_of.astimezone(UTC).replace(tzinfo=None)


def select_key_results(
    key_results: Sequence[StoredKeyResult],
    *,
    as_of: datetime,
    names: Sequence[str] = (),
    due_only: bool = True,
) -> list[StoredKeyResult]:
    """Pick the KRs to measure in this run.

    Args:
        key_results: Every active KR.
        as_of: The time the run measures.
        names: KRs asked for by name (``objective/kr``, or the KR id alone where unique);
            when given, exactly these are measured, due or not.
        due_only: Measure only KRs whose schedule fired since their last measurement.

    Raises:
        ConfigError: a name matches no KR, or a bare KR id matches several.
    """
    if names:
        return [resolve_name(name, key_results) for name in dict.fromkeys(names)]
    if not due_only:
        return list(key_results)
    return [kr for kr in key_results if is_due(kr.schedule, kr.last_as_of, as_of)]


def resolve_name(name: str, key_results: Sequence[StoredKeyResult]) -> StoredKeyResult:
    """Find one KR by ``objective/kr`` or by its id alone.

    Raises:
        ConfigError: no KR answers to ``name`` (with :func:`okr_core.words.suggest`'s hint),
            or several do.
    """
    exact = [kr for kr in key_results if kr.ref == name]
    if exact:
        return exact[0]
    by_id = [kr for kr in key_results if kr.kr_key == name]
    if len(by_id) == 1:
        return by_id[0]
    if by_id:
        options = ", ".join(sorted(kr.ref for kr in by_id))
        raise ConfigError(f"KR id '{name}' is in several objectives; name one of: {options}")
    hint = suggest(name, [kr.ref for kr in key_results]) or " Use 'objective/kr' or a KR id;"
    raise ConfigError(f"No key result named '{name}'.{hint} 'okr status' lists them.")
