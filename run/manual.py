"""Manual KRs: values people check in, scored in runs like measured ones, never fetched.

A ``manual`` KR (``connectors/manual.py``) has no system to ask: a survey done by hand, a
milestone. Its values are check-ins (``okr checkin``, the dashboard's form, see
:mod:`okr_pipeline.run.checkin`), each stored as the measurement of its as-of with kind
``checkin``, its author and its note, by a run of its own that scores it at once.

What a run does with a manual KR at its as-of T (the decision, like ``run/formulas.py``'s
for formulas):

- a check-in made in this run (the check-in run): that value, stored as T's measurement;
- otherwise the check-in in force at T, the latest one at or before T, is scored as of T
  (status, score, pace and forecast move with time as for any KR) and **no measurement is
  written**: the history shows each check-in once, as a check-in, never a copy per run. The
  forecast sees the check-ins up to T and the value in force at T;
- no check-in yet: ``no_data`` ("no check-in yet"), never 0;
- a KR nobody checks in goes ``stale`` like any other: once ``stale_after_periods`` of its
  scheduled refreshes have passed since the check-in in force (its value and score are
  kept on the row, the reason says since when).

Because such evaluations have no measurement beside them, the store counts a manual KR's
evaluations in its last and latest as-of (``Store.active_key_results``), and its later
as-ofs are evaluated again from their evaluation times when a check-in is backdated
(:func:`okr_pipeline.run.history.reevaluate`). Formulas read a manual KR like any other.

:func:`check_manual` runs at load: ``baseline: auto`` needs a value at the cycle's start
that nobody entered, so a manual KR declares its baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from okr_pipeline.okr_core._problems import format_loc, line_of
from okr_pipeline.okr_core.errors import DefinitionError, Problem
from okr_pipeline.okr_core.loader import OkrSet
from okr_pipeline.okr_core.yaml_tree import YamlProblem, load_tree
from okr_pipeline.run.fetch import FetchResult

if TYPE_CHECKING:
    from okr_pipeline.okr_store.records import StoredKeyResult
    from okr_pipeline.okr_store.store import Store

__all__ = ["MANUAL", "Checkin", "ManualResult", "check_manual", "is_manual", "manual_results"]

MANUAL = "manual"


def is_manual(source: Mapping[str, Any]) -> bool:
    """True when a KR's ``source`` mapping is ``manual`` (checked in, not fetched)."""
    return source.get("type") == MANUAL


@dataclass(frozen=True)
class Checkin:
    """A value a person entered for a manual KR, for the run that stores and scores it.

    Attributes:
        ref: The KR, ``objective/kr``.
        cycle: Its cycle's name (the same ``objective/kr`` may exist in several cycles).
        value: The value, exact.
        author: Who entered it.
        note: Why, or what it is based on; None for none.
    """

    ref: str
    cycle: str
    value: Decimal
    author: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ManualResult(FetchResult):
    """A manual KR's value in a run: a check-in made now, or the one in force at the as-of.

    Attributes:
        checked_in_as_of: The as-of of the check-in the value is; None when there is none.
        author: Who entered it.
        note: Its note.
        new: True for a check-in made in this run: stored as the run's measurement. False
            for the check-in in force (stored before) or none: no measurement is written.
    """

    checked_in_as_of: datetime | None = None
    author: str | None = None
    note: str | None = None
    new: bool = False


def manual_results(
    chosen: Sequence[StoredKeyResult],
    results: Sequence[FetchResult],
    store: Store,
    as_of: datetime,
    clock: Callable[[], datetime],
    checkin: Checkin | None = None,
) -> list[FetchResult]:
    """Add this run's manual KRs to the fetched results: their check-in, or the one in force.

    Args:
        chosen: The KRs of the run (manual ones among them; the others are in ``results``).
        results: The fetched results of the others.
        store: Where the check-ins in force are read.
        as_of: The run's as-of.
        clock: Stamps the results.
        checkin: A check-in this run records (its KR is among ``chosen``).

    Returns:
        ``results`` and one result per manual KR of ``chosen``.
    """
    manual = [kr for kr in chosen if is_manual(kr.source)]
    if not manual:
        return list(results)
    since = min(kr.cycle_start for kr in manual)
    history = store.history([kr.kr_id for kr in manual], since=since, until=as_of)
    added: list[FetchResult] = []
    for kr in manual:
        if checkin is not None and (kr.ref, kr.cycle) == (checkin.ref, checkin.cycle):
            added.append(
                ManualResult(
                    kr.kr_id,
                    clock(),
                    value=checkin.value,
                    checked_in_as_of=as_of,
                    author=checkin.author,
                    note=checkin.note,
                    new=True,
                )
            )
            continue
        added.append(in_force(kr, history.get(kr.kr_id, ()), as_of, clock()))
    return [*results, *added]


def in_force(
    kr: StoredKeyResult,
    points: Sequence[tuple[datetime, Decimal]],
    as_of: datetime,
    when: datetime,
) -> ManualResult:
    """The result of a manual KR at ``as_of``: its latest check-in at or before it, if any.

    Args:
        kr: The manual KR.
        points: Its check-ins ``(as_of, value)``, oldest first.
        as_of: The time evaluated.
        when: Stamps the result.
    """
    held = [p for p in points if kr.cycle_start <= p[0] <= as_of]
    if not held:
        return ManualResult(kr.kr_id, when, value=None)
    checked_in, value = held[-1]
    return ManualResult(kr.kr_id, when, value=value, checked_in_as_of=checked_in)


def check_manual(okr_set: OkrSet) -> None:
    """Refuse ``baseline: auto`` on manual KRs: nobody entered a value at the cycle's start.

    Raises:
        DefinitionError: Listing each such KR with its file and line.
    """
    problems: list[Problem] = []
    for loaded in okr_set.files:
        root: Any = None
        for i, objective in enumerate(loaded.definition.objectives):
            for j, kr in enumerate(objective.key_results):
                if not (is_manual(kr.source) and kr.needs_baseline_measurement()):
                    continue
                if root is None:
                    try:
                        root = load_tree(loaded.path, loaded.path.read_bytes())
                    except (OSError, YamlProblem):  # pragma: no cover - it was just loaded
                        root = False
                loc = ("objectives", i, "key_results", j, "baseline")
                problems.append(
                    Problem(
                        loaded.path,
                        format_loc(loc),
                        line_of(root or None, loc),
                        "a manual KR cannot measure 'baseline: auto' (nobody checked in a "
                        "value at the cycle's start); declare the baseline as a number",
                    )
                )
    if problems:
        raise DefinitionError(problems)
