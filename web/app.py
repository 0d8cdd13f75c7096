"""The dashboard as an ASGI application: pages, the JSON API, static files, the forms.

``create_app(settings)`` builds it; ``okr ui`` and ``okr serve`` run it with uvicorn. It
reads the store named by the settings (opened on the first request, never created) and
writes only check-ins and notes, and only when a token or a user is configured. FastAPI's
OpenAPI document is at ``/openapi.json``; its docs pages are off (they load from a CDN).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from okr_pipeline import __version__
from okr_pipeline.okr_core.errors import OkrError
from okr_pipeline.okr_core.redaction import redact_text
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.web.activity import alerts_page, runs_page
from okr_pipeline.web.api import api_router
from okr_pipeline.web.auth import CSRF_COOKIE, Credentials, CsrfSigner, authenticate, writes_enabled
from okr_pipeline.web.kr_detail import UnknownKrError, kr_detail
from okr_pipeline.web.model import StatusFilter
from okr_pipeline.web.overview import OverviewCache, UnknownCycleError, overview
from okr_pipeline.web.pages import (
    STATIC_DIR,
    Flash,
    WriteForm,
    render_alerts,
    render_error,
    render_kr,
    render_overview,
    render_runs,
)
from okr_pipeline.web.store_access import StoreAccess
from okr_pipeline.web.writes import (
    MAX_FORM_BYTES,
    READ_ONLY_MESSAGE,
    WriteError,
    add_note,
    parse_as_of,
    parse_form,
    record_checkin,
)

__all__ = ["Clock", "WebContext", "create_app"]

Clock = Callable[[], datetime]
#: How often the running cycle's overview is checked (and read again if the store changed).
WARM_EVERY_SECONDS = 5.0
DONE_MESSAGES = {
    "checkin": "Check-in recorded; it is in the history below.",
    "note": "Note added.",
}

Text = Annotated[str | None, Query(max_length=200)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
#: The filter form sends "" for "any status".
FormStatus = Annotated[StatusFilter | Literal[""] | None, Query()]


def _now() -> datetime:
    return datetime.now(UTC)


class WebContext:
    """What every route needs: the settings, the store, the clock and the CSRF signer."""

    def __init__(self, settings: Settings, clock: Clock | None, prefect_ui_url: str | None) -> None:
        self.settings = settings
        self.store = StoreAccess(settings)
        self.clock: Clock = clock or _now
        self.csrf = CsrfSigner()
        self.prefect_ui_url = prefect_ui_url
        self.overview_cache = OverviewCache()
        self.stopping = threading.Event()

    def keep_warm(self) -> None:
        """Until the app stops: keep the running cycle's overview read, every few seconds.

        A run (or a check-in) elsewhere changes the store; the next overview would read
        10,000 KRs again. Reading them here first keeps pages fast. Failures (no store yet)
        are the pages' to report, so they are only retried here.
        """
        while not self.stopping.is_set():
            # Any problem (no store yet, unreachable) is the pages' to report; retry later.
            with contextlib.suppress(Exception):
                self.overview_cache.warm(
                    self.store.get(),
                    self.clock(),
                    self.settings.stale_after_periods,
                    ahead=2 * WARM_EVERY_SECONDS,
                )
            self.stopping.wait(WARM_EVERY_SECONDS)

    @property
    def writable(self) -> bool:
        """Whether a token or a user is configured."""
        return writes_enabled(self.settings.ui)


def _blank(value: str | None) -> str | None:
    return value if value else None


def create_app(
    settings: Settings, *, clock: Clock | None = None, prefect_ui_url: str | None = None
) -> FastAPI:
    """The dashboard application for a project.

    Args:
        settings: The project's settings (store, ``ui`` token and users).
        clock: Returns "now" (tests fix it); default the real time.
        prefect_ui_url: The Prefect UI's address, to link runs to their flow runs.

    Returns:
        The FastAPI application.
    """
    ctx = WebContext(settings, clock, prefect_ui_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warmer = threading.Thread(target=ctx.keep_warm, name="okr-overview-warmer", daemon=True)
        warmer.start()
        try:
            yield
        finally:
            ctx.stopping.set()
            warmer.join(timeout=10)
            ctx.store.close()

    app = FastAPI(
        title="okr-pipeline dashboard",
        version=__version__,
        description="Where the OKRs stand: the overview, each KR, runs and alerts (read), "
        "check-ins and notes (write, with a token or a user).",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = ctx
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api_router(ctx))
    _install_error_handlers(app)

    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    def healthz() -> str:
        return "ok"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(
        request: Request,
        cycle: Text = None,
        owner: Text = None,
        status: FormStatus = None,
        objective: Text = None,
        q: Text = None,
        page: PageNumber = 1,
    ) -> Response:
        base = request.scope.get("root_path", "")
        data = overview(
            ctx.store.get(),
            cycle=_blank(cycle),
            owner=_blank(owner),
            status=_blank(status),
            objective=_blank(objective),
            q=_blank(q),
            page=page,
            now=ctx.clock(),
            stale_after_periods=settings.stale_after_periods,
            cache=ctx.overview_cache,
        )
        return HTMLResponse(render_overview(data, base=base))

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs(request: Request) -> Response:
        data = runs_page(ctx.store.get(), prefect_ui_url=ctx.prefect_ui_url)
        return HTMLResponse(render_runs(data, base=request.scope.get("root_path", "")))

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts(request: Request) -> Response:
        data = alerts_page(ctx.store.get(), now=ctx.clock())
        return HTMLResponse(render_alerts(data, base=request.scope.get("root_path", "")))

    def kr_response(
        request: Request,
        ref: str,
        cycle: str | None,
        flashes: list[Flash],
        status_code: int = 200,
    ) -> Response:
        detail = kr_detail(
            ctx.store.get(), ref, cycle=_blank(cycle), settings=settings, now=ctx.clock()
        )
        form = WriteForm()
        token = None
        if ctx.writable:
            cookie = request.cookies.get(CSRF_COOKIE)
            token = (
                cookie if cookie is not None and ctx.csrf.valid(cookie) else ctx.csrf.new_token()
            )
            form = WriteForm(
                enabled=True,
                csrf_token=token,
                token=settings.ui.token_hash is not None,
                users=bool(settings.ui.users),
            )
        html = render_kr(
            detail, flashes=flashes, form=form, base=request.scope.get("root_path", "")
        )
        response = HTMLResponse(html, status_code=status_code)
        if token is not None:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response

    @app.get("/kr/{ref:path}", response_class=HTMLResponse, include_in_schema=False)
    def kr_page(request: Request, ref: str, cycle: Text = None, done: Text = None) -> Response:
        flashes = [Flash("ok", DONE_MESSAGES[done])] if done in DONE_MESSAGES else []
        return kr_response(request, ref, cycle, flashes)

    async def write(request: Request, ref: str, what: str) -> Response:
        base = request.scope.get("root_path", "")
        try:
            if not ctx.writable:
                raise WriteError(403, READ_ONLY_MESSAGE)
            length = request.headers.get("content-length", "0")
            if length.isdigit() and int(length) > MAX_FORM_BYTES:
                raise WriteError(413, "The form is too large.")
            form = parse_form(await request.body())
            if not ctx.csrf.check(request.cookies.get(CSRF_COOKIE), form.get("csrf_token")):
                raise WriteError(
                    403,
                    "The form has expired or did not come from this page; reload the page "
                    "and send it again.",
                )
            author = authenticate(
                settings.ui,
                Credentials(
                    token=form.get("token") or None,
                    user=form.get("user") or None,
                    password=form.get("password"),
                ),
            )
            if author is None:
                raise WriteError(403, "Wrong token or password: nothing was recorded.")
            as_of = parse_as_of(form.get("as_of"))
            if what == "checkin":
                record_checkin(
                    settings,
                    ref,
                    form.get("value", ""),
                    author=author,
                    note=form.get("note") or None,
                    as_of=as_of,
                    now=ctx.clock(),
                )
            else:
                add_note(
                    settings, ref, form.get("text", ""), author=author, as_of=as_of, now=ctx.clock()
                )
        except WriteError as exc:
            try:
                return kr_response(
                    request, ref, None, [Flash("error", redact_text(exc.message))], exc.status
                )
            except UnknownKrError:
                return HTMLResponse(
                    render_error("Nothing recorded", redact_text(exc.message), base=base),
                    status_code=exc.status,
                )
        target = f"{base}/kr/{quote(ref, safe='/')}?done={what}"
        return RedirectResponse(target, status_code=303)

    @app.post("/kr/{ref:path}/checkin", response_class=HTMLResponse, include_in_schema=False)
    async def checkin_form(request: Request, ref: str) -> Response:
        return await write(request, ref, "checkin")

    @app.post("/kr/{ref:path}/note", response_class=HTMLResponse, include_in_schema=False)
    async def note_form(request: Request, ref: str) -> Response:
        return await write(request, ref, "note")

    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _install_error_handlers(app: FastAPI) -> None:
    def answer(request: Request, status: int, title: str, message: str) -> Response:
        message = redact_text(message)
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        base = request.scope.get("root_path", "")
        return HTMLResponse(render_error(title, message, base=base), status_code=status)

    @app.exception_handler(UnknownKrError)
    async def unknown_kr(request: Request, exc: UnknownKrError) -> Response:
        return answer(request, 404, "No such key result", str(exc))

    @app.exception_handler(WriteError)
    async def refused(request: Request, exc: WriteError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="okr"'} if exc.status == 401 else None
        return JSONResponse(
            {"detail": redact_text(exc.message)}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(UnknownCycleError)
    async def unknown_cycle(request: Request, exc: UnknownCycleError) -> Response:
        return answer(request, 404, "No such cycle", str(exc))

    @app.exception_handler(OkrError)
    async def setup_problem(request: Request, exc: OkrError) -> Response:
        # No store yet, or the store cannot be reached: a setup problem, told in one line.
        return answer(request, 503, "The store is not available", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
            )
        return answer(
            request,
            exc.status_code,
            "Not found" if exc.status_code == 404 else "Error",
            str(exc.detail),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        )
        if _wants_json(request):
            # FastAPI's usual shape (a list of problems), each without the input echoed.
            detail = [
                {
                    "loc": list(error.get("loc", ())),
                    "msg": error.get("msg", ""),
                    "type": error.get("type", ""),
                }
                for error in exc.errors()
            ]
            return JSONResponse({"detail": detail}, status_code=422)
        return answer(request, 422, "Bad request", problems)
