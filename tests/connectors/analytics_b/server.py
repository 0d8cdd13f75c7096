"""A local server answering like Plausible, PostHog and Mixpanel, in their documented shapes.

None of the three services can be reached from the tests, so this server stands in for them:
it checks what each vendor's documentation says a request must carry (path, method, the
credentials, the required fields) and answers ``401`` / ``400`` as the service does when
they are wrong, and otherwise answers in the documented shape:

* Plausible Stats API v2, https://plausible.io/docs/stats-api — ``POST /api/v2/query``,
  ``Authorization: Bearer <key>``, body ``site_id``, ``metrics``, ``date_range`` (a
  shortcut or two ISO 8601 dates or date-times); answer
  ``{"results": [{"metrics": [...], "dimensions": []}], "meta": {}, "query": {...}}``.
* PostHog query API, https://posthog.com/docs/api/queries — ``POST
  /api/projects/<id>/query/``, ``Authorization: Bearer <personal key>``, body
  ``{"query": {"kind": "HogQLQuery", "query": ..., "values": {...}}}``; answer with
  ``columns``, ``types`` and ``results`` (a list of rows). A ``{name}`` placeholder without a
  value is a 400, as PostHog refuses it.
* Mixpanel Query API, https://docs.mixpanel.com/reference/segmentation-query — ``GET
  /api/query/segmentation`` with service-account Basic auth and ``project_id``, ``event``,
  ``from_date``, ``to_date`` (required), ``unit`` or ``interval``, ``type``, ``where``;
  answer ``{"data": {"series": [days], "values": {event: {day: count}}},
  "legend_size": 1}``; and https://docs.mixpanel.com/reference/insights-query — ``GET
  /api/query/insights`` with ``project_id`` and ``bookmark_id``; answer ``computed_at``,
  ``date_range``, ``headers`` and ``series`` (metric -> ``{"all": n}`` or ``{date: n}``).

It cannot run HogQL or keep real event data: PostHog answers come from a table of known
queries, and every Mixpanel event happens ``day-of-month`` times a day (so a sum over the
window shows which days were asked for). Some names misbehave on purpose, for the contract's
failure scenarios: ``slow`` (answers after 2 s), ``busy`` (429), ``down`` (503).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"

# Distinctive values, so a grep over the cassettes proves none was recorded.
PLAUSIBLE_KEY = "plk-2c7e90b4d1-SECRET"
POSTHOG_KEY = "phx-91a3f7c05e-SECRET"
MIXPANEL_ACCOUNT = "okr-reader.4f2a.mp-service-account"
MIXPANEL_SECRET = "mps-6d18e2a7fb-SECRET"
ALL_SECRET_VALUES = (PLAUSIBLE_KEY, POSTHOG_KEY, MIXPANEL_SECRET)

#: Plausible: site -> metric -> value; "empty.example" has no row, "odd.example" a row
#: without metrics, "split.example" two rows.
PLAUSIBLE_SITES: dict[str, dict[str, Any]] = {
    "shop.example": {"visitors": 1234, "pageviews": 5678, "events": 9012, "conversion_rate": 3.2},
}
POSTHOG_PROJECT = 4242
#: PostHog: HogQL text -> (columns, rows).
POSTHOG_QUERIES: dict[str, tuple[list[str], list[list[Any]]]] = {
    "SELECT count() FROM events WHERE event = 'signed_up' "
    "AND timestamp >= {date_from} AND timestamp < {date_to}": (["count()"], [[318]]),
    "SELECT avg(properties.amount) FROM events WHERE event = 'paid'": (["avg"], [[12.75]]),
    "SELECT count() FROM events WHERE event = 'never'": (["count()"], []),
    "SELECT event, count() FROM events GROUP BY event": (
        ["event", "count()"],
        [["a", 1], ["b", 2]],
    ),
    "SELECT count() FROM events WHERE event IN ('a', 'b') GROUP BY event": (
        ["count()"],
        [[1], [2]],
    ),
}
MIXPANEL_PROJECT = 31337
#: Mixpanel saved Insights reports: bookmark_id -> series (the shapes of the insights-query
#: reference: one number as "all", a line by date, a breakdown, nothing).
MIXPANEL_REPORTS: dict[str, dict[str, Any]] = {
    "101": {"Logged in": {"all": 9852}},
    "102": {"Logged in": {"2020-08-31T00:00:00-07:00": 9852, "2020-09-07T00:00:00-07:00": 10100}},
    "103": {"Logged in": {"US": {"2020-08-31T00:00:00-07:00": 1}}},
    "104": {},
}
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def _iso_moment(text: Any) -> datetime | date | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    except ValueError:
        return None


class Handler(BaseHTTPRequestHandler):
    """Routes by path to the three vendors."""

    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/api/query/segmentation":
            self._mixpanel(params)
        elif parts.path == "/api/query/insights":
            self._mixpanel_report(params)
        else:
            self._json(404, {"error": f"no route GET {parts.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._json(400, {"error": "request body is not JSON"})
            return
        if path == "/api/v2/query":
            self._plausible(body)
        elif m := re.fullmatch(r"/api/projects/(\d+)/query/", path):
            self._posthog(int(m.group(1)), body)
        else:
            self._json(404, {"error": f"no route POST {path}"})

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _misbehave(self, name: str, error: dict[str, Any]) -> bool:
        """The contract's failure scenarios, triggered by a site, project or event name."""
        if name == "slow":
            time.sleep(2)
            self._json(200, error)
        elif name == "busy":
            self._json(429, error, {"Retry-After": "1"})
        elif name == "down":
            self._json(503, error)
        else:
            return False
        return True

    # -- Plausible -----------------------------------------------------------------------

    def _plausible(self, body: Any) -> None:
        if self.headers.get("Authorization") != f"Bearer {PLAUSIBLE_KEY}":
            self._json(
                401,
                {
                    "error": "Invalid API key or site ID. Please make sure you're "
                    "using a valid API key with access to the site you've requested."
                },
            )
            return
        if not isinstance(body, dict):
            self._json(400, {"error": "#: Invalid query object"})
            return
        for key in ("site_id", "metrics", "date_range"):
            if key not in body:
                self._json(400, {"error": f"#: Required property {key} was not present."})
                return
        metrics, window = body["metrics"], body["date_range"]
        if not isinstance(metrics, list) or not metrics:
            self._json(400, {"error": "#/metrics: Expected a non-empty list of metrics"})
            return
        if not isinstance(window, str):
            moments = [_iso_moment(x) for x in window] if isinstance(window, list) else []
            if len(moments) != 2 or None in moments:
                self._json(400, {"error": f"#/date_range: Invalid date range {window!r}"})
                return
            if type(moments[0]) is not type(moments[1]) or moments[0] > moments[1]:  # type: ignore[operator]
                self._json(400, {"error": f"#/date_range: Invalid date range {window!r}"})
                return
        site = body["site_id"]
        if self._misbehave(site.split(".")[0], {"error": "try later"}):
            return
        query = {**body, "date_range": window}
        if site == "empty.example":
            rows: list[Any] = []
        elif site == "odd.example":
            rows = [{"dimensions": []}]
        elif site == "split.example":
            rows = [{"metrics": [1], "dimensions": []}, {"metrics": [2], "dimensions": []}]
        elif site in PLAUSIBLE_SITES:
            values = PLAUSIBLE_SITES[site]
            unknown = [m for m in metrics if m not in values]
            if unknown:
                self._json(400, {"error": f"#/metrics/0 Invalid metric {unknown[0]!r}"})
                return
            rows = [{"metrics": [values[m] for m in metrics], "dimensions": []}]
        else:
            self._json(400, {"error": f"Site {site!r} not found or not accessible"})
            return
        self._json(200, {"results": rows, "meta": {}, "query": query})

    # -- PostHog -------------------------------------------------------------------------

    def _posthog(self, project: int, body: Any) -> None:
        if self.headers.get("Authorization") != f"Bearer {POSTHOG_KEY}":
            self._json(
                401,
                {
                    "type": "authentication_error",
                    "code": "authentication_failed",
                    "detail": "Incorrect authentication credentials.",
                    "attr": None,
                },
            )
            return
        misbehaving = {1: "slow", 429: "busy", 503: "down"}.get(project, "")
        if self._misbehave(misbehaving, {"detail": "try later"}):
            return
        if project != POSTHOG_PROJECT:
            self._json(
                404,
                {
                    "type": "invalid_request",
                    "code": "not_found",
                    "detail": "Project not found.",
                    "attr": None,
                },
            )
            return
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, dict) or query.get("kind") != "HogQLQuery":
            self._invalid("query", "query.kind must be HogQLQuery")
            return
        text, values = query.get("query"), query.get("values") or {}
        if not isinstance(text, str) or not isinstance(values, dict):
            self._invalid("query", "query.query must be a string, query.values an object")
            return
        missing = [n for n in _PLACEHOLDER.findall(text) if n not in values]
        if missing:
            self._invalid("query", f"Placeholder {{{missing[0]}}} is not available in this context")
            return
        if text not in POSTHOG_QUERIES:
            self._invalid("query", "Unknown table or field in the query")
            return
        columns, rows = POSTHOG_QUERIES[text]
        self._json(
            200,
            {
                "columns": columns,
                "types": [[c, "UInt64"] for c in columns],
                "results": rows,
                "hasMore": False,
                "is_cached": False,
            },
        )

    def _invalid(self, attr: str, detail: str) -> None:
        self._json(
            400,
            {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": attr},
        )

    # -- Mixpanel ------------------------------------------------------------------------

    def _mixpanel(self, params: dict[str, str]) -> None:
        if not self._mixpanel_signed_in():
            return
        for key in ("project_id", "event", "from_date", "to_date"):
            if key not in params:
                self._json(400, {"error": f"missing required parameter: {key}", "status": "error"})
                return
        try:
            first = date.fromisoformat(params["from_date"])
            last = date.fromisoformat(params["to_date"])
        except ValueError:
            self._json(400, {"error": "dates must be yyyy-mm-dd", "status": "error"})
            return
        if first > last or params.get("type", "general") not in ("general", "unique", "average"):
            self._json(400, {"error": "invalid date range or type", "status": "error"})
            return
        event = params["event"]
        if self._misbehave(event, {"error": "try later", "status": "error"}):
            return
        if params["project_id"] != str(MIXPANEL_PROJECT):
            self._json(
                403, {"error": "service account has no access to this project", "status": "error"}
            )
            return
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        if event == "Never":
            values: dict[str, Any] = {}
        elif event == "Broken":
            values = {event: [1, 2]}
        elif event == "Split":
            values = {"a": {days[0].isoformat(): 1}, "b": {days[0].isoformat(): 2}}
        elif "interval" in params:
            # One bucket as long as the window: its uniques (here: one user per day).
            values = {event: {first.isoformat(): len(days)}}
        else:
            values = {event: {d.isoformat(): d.day for d in days}}
        series = [d.isoformat() for d in days] if "interval" not in params else [first.isoformat()]
        self._json(200, {"data": {"series": series, "values": values}, "legend_size": len(values)})

    def _mixpanel_report(self, params: dict[str, str]) -> None:
        if not self._mixpanel_signed_in():
            return
        for key in ("project_id", "bookmark_id"):
            if key not in params:
                self._json(400, {"error": f"missing required parameter: {key}", "status": "error"})
                return
        if params["bookmark_id"] not in MIXPANEL_REPORTS:
            self._json(400, {"error": "report not found", "status": "error"})
            return
        window = {
            "from_date": "2020-08-31T00:00:00-07:00",
            "to_date": "2020-09-12T23:59:59.999000-07:00",
        }
        series = MIXPANEL_REPORTS[params["bookmark_id"]]
        self._json(
            200,
            {
                "computed_at": "2020-09-21T16:35:41.252314+00:00",
                "date_range": window,
                "headers": ["$event"],
                "series": series,
            },
        )

    def _mixpanel_signed_in(self) -> bool:
        pair = f"{MIXPANEL_ACCOUNT}:{MIXPANEL_SECRET}".encode()
        if self.headers.get("Authorization") == "Basic " + base64.b64encode(pair).decode():
            return True
        self._json(401, {"error": "Invalid service account credentials", "status": "error"})
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up (the timeout scenario) are expected


def start() -> ThreadingHTTPServer:
    """Start the server on a free port in a daemon thread; ``shutdown()`` stops it."""
    server = _Server((HOST, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The base URL of a running server, e.g. ``http://127.0.0.1:40123``."""
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
