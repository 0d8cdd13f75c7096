"""What the dashboard shows, as pydantic models: page data and API answers in one.

The pages (``web/pages.py``) render these; the JSON API (``web/api.py``) returns them, so
FastAPI's OpenAPI document describes exactly what the pages show. Values are exact decimal
strings as stored (``"2412.5"``), never floats; progress and scores are numbers. A missing
number is ``null``, never 0. Times are aware UTC; every view says whether it shows
``measured_at`` (when a value was fetched) or ``as_of`` (the time it describes).

The functions that fill them are :func:`okr_pipeline.web.overview.overview`,
:func:`okr_pipeline.web.kr_detail.kr_detail` and :mod:`okr_pipeline.web.activity`'s
``runs_page`` and ``alerts_page``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertRow",
    "AlertStateRow",
    "AlertsPage",
    "Band",
    "BandPoint",
    "ChartData",
    "CheckinAnswer",
    "CycleInfo",
    "Definition",
    "ErrorMessage",
    "EvaluationRow",
    "Filters",
    "HistoryKind",
    "HistoryRow",
    "KrDetail",
    "KrRow",
    "NoteAnswer",
    "NotePoint",
    "NoteRow",
    "ObjectiveChoice",
    "ObjectiveNode",
    "OverviewPage",
    "PageInfo",
    "Point",
    "RunFailure",
    "RunRow",
    "RunsPage",
    "SilenceRow",
    "StatusFilter",
    "band_of",
]

Band = Literal["red", "yellow", "green"]
HistoryKind = Literal["measured", "checkin"]
#: What the overview filters statuses by: a KR's status, or ``none`` (never evaluated). The
#: statuses are ``okr_store.models.STATUSES`` (a test keeps the two the same).
StatusFilter = Literal["on_track", "at_risk", "off_track", "no_data", "error", "stale", "none"]


def band_of(score: float | None) -> Band | None:
    """Google's colour band of a score: 0.0-0.3 red, 0.4-0.6 yellow, 0.7-1.0 green.

    Scores are graded in tenths, so a score is rounded to one decimal first (0.34 is red,
    0.35 yellow, 0.65 green). None (no score) has no band.
    """
    if score is None or not math.isfinite(score):
        return None
    tenths = math.floor(score * 10 + 0.5)
    if tenths <= 3:
        return "red"
    if tenths <= 6:
        return "yellow"
    return "green"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorMessage(_Model):
    """An error answer: what went wrong, in one line."""

    detail: str = Field(description="What went wrong and how to fix it.")


class CycleInfo(_Model):
    """An OKR cycle in the store."""

    name: str
    start: datetime
    end: datetime = Field(description="End of the cycle (exclusive).")
    krs: int = Field(description="Active key results in the cycle.")


class Filters(_Model):
    """The overview's filters, as applied (empty: not filtered)."""

    cycle: str | None = None
    owner: str | None = None
    status: str | None = None
    objective: str | None = None
    q: str | None = Field(None, description="Words searched in KR and objective ids and titles.")


class PageInfo(_Model):
    """Which page of KR rows this is."""

    number: int = Field(description="Page number, from 1.")
    size: int = Field(description="Rows per page.")
    pages: int = Field(description="Pages in all (at least 1).")
    total: int = Field(description="KR rows matching the filters, on all pages.")


class ObjectiveChoice(_Model):
    """An objective of the cycle, for the filter: its id and depth in the tree."""

    key: str
    depth: int


class ObjectiveNode(_Model):
    """An objective of the alignment tree, with its rolled-up score."""

    key: str
    title: str
    owner: str
    type: str = Field(description="aspirational or committed.")
    parent: str | None = Field(description="The objective it supports, if shown.")
    depth: int = Field(description="0 for a top objective, 1 for its children, ...")
    score: float | None = Field(description="Weighted mean of its KRs and child objectives.")
    band: Band | None
    partial: bool = Field(description="Something under it is left out of its score.")
    marks: list[str] = Field(description="What the score is made of, when not plain.")
    krs: int = Field(description="KRs of this objective matching the filters.")
    statuses: dict[str, int] = Field(description="Its KRs by status.")


class KrRow(_Model):
    """Where one KR stands: its latest evaluation and measurement."""

    ref: str = Field(description='"objective/kr"')
    cycle: str
    objective: str
    key: str
    title: str
    owner: str
    kind: str = Field(description="increase, decrease, at_least, at_most or milestone.")
    unit: str
    value: str | None = Field(description="The value scored, exact, as stored.")
    baseline: str | None
    target: str | None = Field(description="The absolute target, exact.")
    target_as_written: str | None
    progress: float | None = Field(description="Raw progress (may be below 0 or above 1).")
    expected_progress: float | None = Field(description="Share of the cycle elapsed (pace).")
    score: float | None = Field(description="The score it counts with in its objective.")
    score_basis: str = Field(description="current, carried, stale or unscored.")
    band: Band | None
    status: str | None
    reason: str
    error: str | None = Field(description="Why the latest measurement failed, if it did.")
    last_good_value: str | None
    measured_at: datetime | None = Field(description="When the latest value was fetched.")
    as_of: datetime | None = Field(description="The time the latest evaluation describes.")


class OverviewPage(_Model):
    """The overview of one cycle: the alignment tree and one page of KR rows."""

    cycle: str | None = Field(description="The cycle shown; null when the store has none.")
    cycles: list[CycleInfo]
    filters: Filters
    owners: list[str] = Field(description="Owners in the cycle, for the filter.")
    statuses: list[str] = Field(description="Statuses a KR can have, for the filter.")
    objective_choices: list[ObjectiveChoice] = Field(
        default_factory=list, description="Every objective of the cycle, for the filter."
    )
    objectives: list[ObjectiveNode] = Field(description="The tree, parents before children.")
    krs: list[KrRow] = Field(description="This page's KR rows, grouped by objective.")
    total: int = Field(description="KR rows matching the filters.")
    page: PageInfo
    counts: dict[str, int] = Field(description="KRs of the cycle by status (unfiltered).")
    generated_at: datetime


class Point(_Model):
    """A point of a chart series: ``x`` an as-of, ``y`` a value."""

    x: datetime
    y: float


class BandPoint(_Model):
    """A point of the forecast's band."""

    x: datetime
    low: float
    high: float


class NotePoint(_Model):
    """A note placed on the chart: at its as-of, at the value in force then."""

    x: datetime
    y: float
    text: str


class ChartData(_Model):
    """The series of a KR's chart over its cycle (values as numbers, for drawing only)."""

    start: datetime
    end: datetime
    unit: str
    measured: list[Point] = Field(description="Good values at their as-of.")
    baseline: float | None
    target: float | None
    pace: list[Point] = Field(description="Expected pace: baseline at start to target at end.")
    forecast: list[Point] = Field(description="From the latest value to the cycle's end.")
    band: list[BandPoint] = Field(description="The forecast's band, same x as forecast.")
    notes: list[NotePoint] = Field(
        default_factory=list, description="Notes at their as-of, on the line they comment."
    )


class Definition(_Model):
    """A KR's metric source, with every secret redacted."""

    source_type: str
    connection: str | None = Field(description="The connection's name, if it uses one.")
    connection_url: str | None = Field(description="The connection's URL, masked.")
    query: str | None = Field(description="SQL query, for SQL sources.")
    url: str | None = Field(description="Path or URL called, for HTTP sources.")
    source: dict[str, object] = Field(description="The source as written, secrets masked.")
    schedule: str


class HistoryRow(_Model):
    """One measurement or check-in of a KR."""

    as_of: datetime = Field(description="The time the value describes.")
    measured_at: datetime = Field(description="When it was fetched or entered.")
    run_id: int | None
    kind: HistoryKind
    author: str | None
    note: str | None
    outcome: str = Field(description="ok, no_data or error.")
    value: str | None
    error: str | None


class EvaluationRow(_Model):
    """How the KR stood as of one time."""

    as_of: datetime
    status: str
    reason: str
    value: str | None
    progress: float | None
    score: float | None
    expected_progress: float | None
    forecast_value: str | None


class AlertStateRow(_Model):
    """A pending or firing alert of a KR."""

    kind: str
    phase: str
    active_count: int
    active_since: datetime
    fired_at: datetime | None
    last_sent_at: datetime | None


class AlertRow(_Model):
    """One recorded notification."""

    id: int
    created_at: datetime
    run_id: int | None
    ref: str
    kind: str
    transition: str
    route: str
    channel: str = Field(description="Redacted: scheme and host only.")
    delivery: str
    error: str | None


class SilenceRow(_Model):
    """A silence of a KR or an objective."""

    id: int
    target: str
    until: datetime
    reason: str
    created_at: datetime
    active: bool


class NoteRow(_Model):
    """A note on a KR (context for its numbers)."""

    as_of: datetime | None
    created_at: datetime
    author: str | None
    text: str


class KrDetail(_Model):
    """Everything about one KR: where it stands, its chart, history and definition."""

    row: KrRow
    objective_title: str
    objective_type: str
    cycle_start: datetime
    cycle_end: datetime
    weight: str
    floor: str | None
    manual: bool = Field(description="Its values are checked in by hand.")
    definition: Definition
    chart: ChartData
    history: list[HistoryRow] = Field(description="Newest first.")
    evaluations: list[EvaluationRow] = Field(description="Status over time, newest first.")
    alert_states: list[AlertStateRow]
    alerts: list[AlertRow]
    silences: list[SilenceRow]
    notes: list[NoteRow]


class RunFailure(_Model):
    """A KR a run could not measure."""

    ref: str
    outcome: str
    message: str


class RunRow(_Model):
    """One run of the pipeline."""

    id: int
    trigger: str = Field(description="What started it: run, backfill, checkin or replay.")
    as_of: datetime
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    status: str
    total: int
    measured: int
    no_data: int
    errors: int
    failures: list[RunFailure]
    flow_run_id: str | None
    flow_run_url: str | None = Field(description="The flow run in the Prefect UI, if known.")


class RunsPage(_Model):
    """The latest runs, newest first."""

    runs: list[RunRow]


class AlertsPage(_Model):
    """Recent alerts, newest first, and the silences."""

    alerts: list[AlertRow]
    silences: list[SilenceRow]


class CheckinAnswer(_Model):
    """A check-in recorded."""

    ref: str
    value: str
    as_of: datetime
    author: str
    status: str | None = Field(description="The KR's status after the check-in, if evaluated.")


class NoteAnswer(_Model):
    """A note recorded."""

    ref: str
    author: str
    text: str
