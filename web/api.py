"""The JSON API under ``/api/``: everything the pages show, and check-ins and notes.

Every answer is a model of ``web/model.py``, so ``/openapi.json`` describes it. Reads need
nothing; writes need ``Authorization: Bearer <token>`` or Basic ``user:password`` (no CSRF
token: a browser never adds that header to a cross-site request by itself) and answer 403
while the dashboard is read-only. Unknown KRs and cycles are 404 with ``{"detail": ...}``;
bad parameters are 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from okr_pipeline.web import queries
from okr_pipeline.web.activity import alerts_page, runs_page
from okr_pipeline.web.auth import authenticate
from okr_pipeline.web.kr_detail import kr_detail, resolve
from okr_pipeline.web.model import (
    AlertRow,
    CheckinAnswer,
    CycleInfo,
    ErrorMessage,
    HistoryRow,
    KrDetail,
    NoteAnswer,
    OverviewPage,
    RunRow,
    SilenceRow,
    StatusFilter,
)
from okr_pipeline.web.overview import overview
from okr_pipeline.web.writes import (
    READ_ONLY_MESSAGE,
    WriteError,
    add_note,
    credentials_from_header,
    record_checkin,
)

if TYPE_CHECKING:
    from okr_pipeline.web.app import WebContext

__all__ = ["CheckinRequest", "NoteRequest", "api_router"]

Text = Annotated[str | None, Query(max_length=200)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such KR or cycle."}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "No store yet, or the store is unreachable."}
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "Bad value, or as-of outside the cycle."},
    401: {"model": ErrorMessage, "description": "No or wrong token / password."},
    403: {"model": ErrorMessage, "description": "The dashboard is read-only."},
    404: {"model": ErrorMessage, "description": "No such KR."},
}


class CheckinRequest(BaseModel):
    """A value checked in by hand."""

    model_config = ConfigDict(extra="forbid")

    value: str | int | float = Field(description='The value, e.g. "42.5" (exact as a string).')
    note: str | None = Field(None, max_length=2000, description="Why, or where it came from.")
    as_of: datetime | None = Field(None, description="The time it describes; default now.")


class NoteRequest(BaseModel):
    """A note on a KR."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    as_of: datetime | None = None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def api_router(ctx: WebContext) -> APIRouter:
    """The ``/api/`` routes over the app's context."""
    router = APIRouter(prefix="/api", tags=["okr"], responses=UNAVAILABLE)

    @router.get("/overview", response_model=OverviewPage, responses=NOT_FOUND)
    def get_overview(
        cycle: Text = None,
        owner: Text = None,
        status: Annotated[StatusFilter | None, Query()] = None,
        objective: Text = None,
        q: Text = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> OverviewPage:
        """The overview of a cycle (default: the running one): tree, scores, one page of KRs."""
        return overview(
            ctx.store.get(),
            cycle=cycle or None,
            owner=owner or None,
            status=status,
            objective=objective or None,
            q=q or None,
            page=page,
            page_size=page_size,
            now=ctx.clock(),
            stale_after_periods=ctx.settings.stale_after_periods,
            cache=ctx.overview_cache,
        )

    @router.get("/cycles", response_model=list[CycleInfo])
    def get_cycles() -> list[CycleInfo]:
        """The cycles in the store, newest first."""
        return [
            CycleInfo(name=name, start=start, end=end, krs=count)
            for name, start, end, count in queries.cycles(ctx.store.get())
        ]

    @router.get("/krs/{ref:path}/history", response_model=list[HistoryRow], responses=NOT_FOUND)
    def get_history(ref: str, cycle: Text = None) -> list[HistoryRow]:
        """A KR's measurements and check-ins, newest as-of first."""
        detail = kr_detail(
            ctx.store.get(), ref, cycle=cycle or None, settings=ctx.settings, now=ctx.clock()
        )
        return detail.history

    @router.post(
        "/krs/{ref:path}/checkins",
        response_model=CheckinAnswer,
        status_code=201,
        responses=WRITE_ERRORS,
    )
    def post_checkin(ref: str, body: CheckinRequest, request: Request) -> CheckinAnswer:
        """Check in a value for a manual KR (``Authorization`` required)."""
        author = _author(ctx, request)
        kr = resolve(ctx.store.get(), ref)
        now = ctx.clock()
        as_of = _utc(body.as_of)
        result = record_checkin(
            ctx.settings,
            kr.ref,
            str(body.value),
            author=author,
            note=body.note,
            as_of=as_of,
            now=now,
        )
        return CheckinAnswer(
            ref=kr.ref,
            value=result.value or str(body.value),
            as_of=result.as_of or as_of or now,
            author=author,
            status=result.status,
        )

    @router.post(
        "/krs/{ref:path}/notes", response_model=NoteAnswer, status_code=201, responses=WRITE_ERRORS
    )
    def post_note(ref: str, body: NoteRequest, request: Request) -> NoteAnswer:
        """Add a note to a KR (``Authorization`` required)."""
        author = _author(ctx, request)
        kr = resolve(ctx.store.get(), ref)
        add_note(
            ctx.settings, kr.ref, body.text, author=author, as_of=_utc(body.as_of), now=ctx.clock()
        )
        return NoteAnswer(ref=kr.ref, author=author, text=body.text.strip())

    @router.get("/krs/{ref:path}", response_model=KrDetail, responses=NOT_FOUND)
    def get_kr(ref: str, cycle: Text = None) -> KrDetail:
        """Everything about a KR: its row, chart, history, evaluations, alerts, definition."""
        return kr_detail(
            ctx.store.get(), ref, cycle=cycle or None, settings=ctx.settings, now=ctx.clock()
        )

    @router.get("/runs", response_model=list[RunRow])
    def get_runs(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[RunRow]:
        """The latest runs, newest first, with failures and Prefect links."""
        return runs_page(ctx.store.get(), limit=limit, prefect_ui_url=ctx.prefect_ui_url).runs

    @router.get("/alerts", response_model=list[AlertRow])
    def get_alerts(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AlertRow]:
        """The latest alerts recorded, newest first."""
        return alerts_page(ctx.store.get(), limit=limit, now=ctx.clock()).alerts

    @router.get("/silences", response_model=list[SilenceRow])
    def get_silences() -> list[SilenceRow]:
        """Every silence not removed (expired ones marked inactive)."""
        return alerts_page(ctx.store.get(), limit=1, now=ctx.clock()).silences

    return router


def _author(ctx: WebContext, request: Request) -> str:
    if not ctx.writable:
        raise WriteError(403, READ_ONLY_MESSAGE)
    author = authenticate(
        ctx.settings.ui, credentials_from_header(request.headers.get("authorization"))
    )
    if author is None:
        raise WriteError(401, "Send 'Authorization: Bearer <token>' or Basic user:password.")
    return author
