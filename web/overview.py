"""The overview of a cycle: the alignment tree with rolled-up scores and one page of KR rows.

Two queries whatever the number of KRs (the cycles, then every KR's latest state through
``Store.latest_status``); objective scores are rolled up over the whole cycle, then the
filters narrow the rows and one page of them is returned, so a page of 10,000 KRs costs
what its rows cost to read, not to render. The app keeps the cycle's rows in an
:class:`OverviewCache` while the store is unchanged: the next filter or page is only
Python over them.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from okr_pipeline.okr_core.rollup import ObjectiveScore
from okr_pipeline.okr_store.records import STATUSES, StatusRow
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.update import fewer_gc_pauses
from okr_pipeline.web import queries
from okr_pipeline.web.model import (
    CycleInfo,
    Filters,
    KrRow,
    ObjectiveChoice,
    ObjectiveNode,
    OverviewPage,
    PageInfo,
    band_of,
)
from okr_pipeline.web.standing import judged, kr_score, objective_score_map, score_marks

__all__ = [
    "PAGE_SIZE",
    "CycleState",
    "OverviewCache",
    "UnknownCycleError",
    "current_cycle",
    "cycle_state",
    "kr_row",
    "overview",
]

#: KR rows per page: a page renders in milliseconds at any size of company.
PAGE_SIZE = 200
DEFAULT_STALE_AFTER_PERIODS = 3.0


class UnknownCycleError(LookupError):
    """The cycle asked for is not in the store (the message names the known ones)."""


def exact(value: Decimal | None) -> str | None:
    """A stored value as its exact decimal string (``"2412.5"``), or None."""
    return None if value is None else str(value)


def current_cycle(cycles: Sequence[CycleInfo], now: datetime) -> str | None:
    """The cycle running at ``now`` (the latest started if several), else the newest one."""
    running = [c for c in cycles if c.start <= now < c.end]
    chosen = running or list(cycles)
    return max(chosen, key=lambda c: (c.start, c.name)).name if chosen else None


def kr_row(row: StatusRow) -> KrRow:
    """The dashboard's row of one KR from its stored state (already judged for staleness)."""
    counted = kr_score(row)
    # Built from the store's own typed rows: validating 10,000 of them again costs more
    # than reading them.
    return KrRow.model_construct(
        ref=row.ref,
        cycle=row.cycle,
        objective=row.objective_key,
        key=row.kr_key,
        title=row.kr_title,
        owner=row.owner,
        kind=row.kind,
        unit=row.unit,
        value=exact(row.value),
        baseline=exact(row.baseline),
        target=exact(row.target_value),
        target_as_written=row.target,
        progress=_finite(row.progress),
        expected_progress=_finite(row.expected_progress),
        score=_finite(counted.score),
        score_basis=counted.basis,
        band=band_of(counted.score),
        status=row.status,
        reason=row.reason,
        error=row.error_message if row.outcome == "error" else None,
        last_good_value=exact(row.last_good_value),
        measured_at=row.measured_at,
        as_of=row.evaluated_at,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _tree_order(rows: Sequence[StatusRow]) -> list[tuple[str, int]]:
    """Objective keys parents first (depth-first, by key), each with its depth."""
    parents: dict[str, str | None] = {}
    for row in rows:
        parents.setdefault(row.objective_key, row.parent_key)
    children: dict[str | None, list[str]] = {}
    for key, parent in parents.items():
        children.setdefault(parent if parent in parents else None, []).append(key)
    order: list[tuple[str, int]] = []
    seen: set[str] = set()
    stack = [(key, 0) for key in sorted(children.get(None, []), reverse=True)]
    while stack:
        key, depth = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        order.append((key, depth))
        stack.extend((child, depth + 1) for child in sorted(children.get(key, []), reverse=True))
    # Objectives on a parent loop have no root; the loader refuses loops, but never hide rows.
    order.extend((key, 0) for key in sorted(parents) if key not in seen)
    return order


def _subtree(root: str, rows: Iterable[StatusRow]) -> set[str]:
    children: dict[str, set[str]] = {}
    for row in rows:
        if row.parent_key is not None:
            children.setdefault(row.parent_key, set()).add(row.objective_key)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _matches(row: StatusRow, words: Sequence[str]) -> bool:
    text = " ".join(
        (row.objective_key, row.kr_key, row.kr_title, row.objective_title, row.owner)
    ).casefold()
    return all(word in text for word in words)


@dataclass(frozen=True)
class CycleState:
    """Everything the overview derives from a cycle's rows before filtering, for reuse.

    Attributes:
        rows: The KRs as they stand (judged for staleness), in tree order then by KR id.
        scores: Each objective's rolled-up score.
        order: Objective keys in tree order, with their depth.
        counts: KRs by status (``none``: never evaluated).
        owners: The owners, sorted.
    """

    rows: list[StatusRow]
    scores: dict[str, ObjectiveScore]
    order: list[tuple[str, int]]
    counts: dict[str, int]
    owners: list[str]


def cycle_state(store: Store, cycle: str, now: datetime, stale_after_periods: float) -> CycleState:
    """Read a cycle's KRs (one query) and derive what every overview of it starts from."""
    with fewer_gc_pauses():
        # As of now: a value stored for a future as-of (--allow-future) waits its turn.
        rows = judged(store.latest_status(cycle, at=now), now, stale_after_periods)
        order = _tree_order(rows)
        rank = {key: i for i, (key, _) in enumerate(order)}
        rows.sort(key=lambda row: (rank[row.objective_key], row.kr_key))
        return CycleState(
            rows=rows,
            scores=objective_score_map(rows),
            order=order,
            counts=dict(Counter(row.status or "none" for row in rows)),
            owners=sorted({row.owner for row in rows}),
        )


class OverviewCache:
    """The last few cycles' :class:`CycleState`, kept while the store has not changed.

    The key is the cycle, the store's version (:func:`queries.store_version`: it changes
    with every run, check-in and definition sync) and ``now`` to the minute (staleness and
    future as-ofs move with time), so a page never shows what the store no longer says; a
    state is read as of the time of the request that read it, so a value whose as-of has
    just come (one stored ahead with ``--allow-future``) shows within a minute.
    Filtering, paging and rendering a cached cycle of 10,000 KRs takes milliseconds; the
    app also keeps the running cycle warm in the background (:meth:`warm`), so the first
    request after a run rarely pays for reading it.

    Args:
        size: How many states to keep.
    """

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._states: OrderedDict[tuple[object, ...], CycleState] = OrderedDict()
        self._lock = threading.Lock()
        # One read of a cycle at a time: a request arriving while the warmer reads the
        # same state waits for it instead of reading it a second time.
        self._reading = threading.Lock()

    def _cached(self, key: tuple[object, ...]) -> CycleState | None:
        with self._lock:
            if key in self._states:
                self._states.move_to_end(key)
                return self._states[key]
        return None

    def get(
        self, store: Store, cycle: str, now: datetime, stale_after_periods: float
    ) -> CycleState:
        """The cycle's state, from the cache or read now."""
        minute = now.replace(second=0, microsecond=0)
        key = (cycle, queries.store_version(store), minute, stale_after_periods)
        state = self._cached(key)
        if state is not None:
            return state
        with self._reading:
            state = self._cached(key)
            if state is None:
                state = cycle_state(store, cycle, now, stale_after_periods)
                with self._lock:
                    self._states[key] = state
                    while len(self._states) > self._size:
                        self._states.popitem(last=False)
        return state

    def warm(
        self, store: Store, now: datetime, stale_after_periods: float, ahead: float = 0.0
    ) -> None:
        """Read the running cycle's state now if the store changed (or the minute did).

        Args:
            store: The store.
            now: The time now.
            stale_after_periods: ``Settings.stale_after_periods``.
            ahead: Also read the next minute's state when it starts within this many
                seconds, so that the first request of a minute finds it ready.
        """
        cycles = [
            CycleInfo(name=name, start=start, end=end, krs=count)
            for name, start, end, count in queries.cycles(store)
        ]
        cycle = current_cycle(cycles, now)
        if cycle is None:
            return
        self.get(store, cycle, now, stale_after_periods)
        next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if (next_minute - now).total_seconds() <= ahead:
            self.get(store, cycle, next_minute, stale_after_periods)


def overview(
    store: Store,
    *,
    cycle: str | None = None,
    owner: str | None = None,
    status: str | None = None,
    objective: str | None = None,
    q: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    now: datetime | None = None,
    stale_after_periods: float = DEFAULT_STALE_AFTER_PERIODS,
    cache: OverviewCache | None = None,
) -> OverviewPage:
    """The overview of one cycle, filtered, one page of KR rows.

    Args:
        store: The store to read.
        cycle: The cycle; default the one running now (else the newest).
        owner: Only KRs of this owner (exact).
        status: Only KRs with this status (``none``: never evaluated).
        objective: Only this objective and the objectives under it.
        q: Only KRs whose ids, titles or owner contain every word (any case).
        page: Page number from 1 (past the last: the last).
        page_size: Rows per page.
        now: The time to judge staleness at (default: now).
        stale_after_periods: ``Settings.stale_after_periods``.
        cache: Reuse the cycle's rows while the store is unchanged (the app keeps one).

    Returns:
        The page data.

    Raises:
        UnknownCycleError: ``cycle`` is not in the store.
    """
    now = now or datetime.now(UTC)
    cycle_list = [
        CycleInfo(name=name, start=start, end=end, krs=count)
        for name, start, end, count in queries.cycles(store)
    ]
    names = [c.name for c in cycle_list]
    if cycle is not None and cycle not in names:
        known = ", ".join(names) or "none yet"
        raise UnknownCycleError(f"No cycle '{cycle}' in the store. Cycles: {known}.")
    chosen = cycle or current_cycle(cycle_list, now)
    if chosen is None:
        state = CycleState(rows=[], scores={}, order=[], counts={}, owners=[])
    elif cache is not None:
        state = cache.get(store, chosen, now, stale_after_periods)
    else:
        state = cycle_state(store, chosen, now, stale_after_periods)
    rows = state.rows

    shown = rows
    if owner:
        shown = [row for row in shown if row.owner == owner]
    if status:
        shown = [row for row in shown if (row.status or "none") == status]
    if objective:
        keys = _subtree(objective, rows)
        shown = [row for row in shown if row.objective_key in keys]
    words = (q or "").casefold().split()
    if words:
        shown = [row for row in shown if _matches(row, words)]

    per_objective = Counter(row.objective_key for row in shown)
    statuses: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for row in shown:
        statuses[row.objective_key][row.status or "none"] += 1
    first: dict[str, StatusRow] = {}
    for row in rows:
        first.setdefault(row.objective_key, row)
    filtered = bool(owner or status or objective or words)
    nodes = []
    for key, depth in state.order:
        if filtered and not per_objective[key]:
            continue
        info, result = first[key], state.scores.get(key)
        score = None if result is None else _finite(result.score)
        nodes.append(
            ObjectiveNode.model_construct(
                key=key,
                title=info.objective_title,
                owner=info.owner,
                type=info.objective_type,
                parent=info.parent_key if info.parent_key in first else None,
                depth=depth,
                score=score,
                band=band_of(score),
                partial=result is None or result.partial,
                marks=score_marks(result),
                krs=per_objective[key],
                statuses=dict(statuses.get(key, {})),
            )
        )

    total = len(shown)
    pages = max(1, math.ceil(total / page_size))
    number = min(max(1, page), pages)
    start = (number - 1) * page_size
    return OverviewPage(
        cycle=chosen,
        cycles=cycle_list,
        filters=Filters(cycle=chosen, owner=owner, status=status, objective=objective, q=q),
        owners=state.owners,
        statuses=[*STATUSES, "none"],
        objective_choices=[
            ObjectiveChoice.model_construct(key=key, depth=depth) for key, depth in state.order
        ],
        objectives=nodes,
        krs=[kr_row(row) for row in shown[start : start + page_size]],
        total=total,
        page=PageInfo(number=number, size=page_size, pages=pages, total=total),
        counts=state.counts,
        generated_at=now,
    )
