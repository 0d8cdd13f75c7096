"""A local server answering like Jira, GitHub and a CSV host, in their documented shapes.

Jira Cloud ``POST /rest/api/3/search/approximate-count`` (body ``{"jql"}``, answer
``{"count"}``, basic auth email:API token, 400 ``{"errorMessages": [...]}`` for a bad or
unbounded JQL): https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/
Jira Data Center ``GET /rest/api/2/search?jql=&maxResults=0`` (answer ``{"startAt",
"maxResults", "total", "issues"}``, bearer personal access token):
https://docs.atlassian.com/software/jira/docs/api/REST/latest/#api/2/search
GitHub ``GET /search/issues?q=`` (answer ``{"total_count", "incomplete_results",
"items"}``, 422 "Validation Failed" without q, 401 "Bad credentials", rate limit 403/429
with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``):
https://docs.github.com/en/rest/search/search#search-issues-and-pull-requests and
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api

The server knows a few queries exactly (a wrongly rendered JQL or q is a 400/422, as an
unknown one would not match); special queries misbehave for the failure tests.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

EMAIL = "okr-bot@example.com"
JIRA_TOKEN = "jira-4d7a2c91e0-SECRET"
JIRA_PAT = "jpat-81b3f6c2d4-SECRET"
GITHUB_TOKEN = "ghp-5a0c9e7d13-SECRET"
CSV_KEY = "csvkey-2b8e41f7a6-SECRET"
ALL_SECRET_VALUES = (JIRA_TOKEN, JIRA_PAT, GITHUB_TOKEN, CSV_KEY)
#: The epoch second GitHub's rate-limited answers name as their reset.
RESET_AT = 1_714_564_800

JQL_COUNTS = {
    'project = OPS AND resolved <= "2024-05-01"': 17,
    'project = OPS AND resolved >= "2024-04-01 00:00" AND resolved <= "2024-05-01 12:00"': 9,
    "project = OPS AND statusCategory != Done": 0,
    'project = CLI AND resolved <= "2026-11-02"': 23,
}
Q_COUNTS = {
    "repo:acme/app is:issue closed:2024-04-01T00:00:00Z..2024-05-01T12:00:00Z": 31,
    "repo:acme/app is:pr is:merged merged:2024-04-24T12:00:00Z..2024-05-01T12:00:00Z": 12,
    "org:acme is:issue is:open label:bug created:<=2024-05-01": 4,
    "repo:acme/app is:pr is:open": 0,
    "repo:acme/cli is:issue closed:2026-10-01T00:00:00Z..2026-11-02T12:00:00Z": 58,
}

CSV_FILES = {
    "/sheet.csv": (
        "week,team,signups,revenue\n"
        '2024-04-01,web,10,"1,200.50"\n'
        "2024-04-01,app,5,300\n"
        '2024-04-08,web,12,"1,000"\n'
        "2024-04-29,web,15,900\n"
        "2024-05-06,web,99,5\n"
    ),
}


class Handler(BaseHTTPRequestHandler):
    """Routes Jira, GitHub and CSV paths; see the module docstring."""

    hits: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/rest/api/2/search":
            self._jira_dc(query)
        elif parts.path in ("/search/issues", "/api/v3/search/issues"):
            self._github(query)
        elif parts.path in CSV_FILES:
            self._send(200, CSV_FILES[parts.path], "text/csv")
        elif parts.path == "/keyed.csv":
            ok = query.get("key") == CSV_KEY
            self._send(200 if ok else 403, "a,b\n1,2\n" if ok else "forbidden", "text/csv")
        elif parts.path == "/flaky.csv":
            if self._hit(self.path) == 1:
                self._send(503, "busy", "text/plain")
            else:
                self._send(200, "total\n7\n", "text/csv")
        elif parts.path.startswith("/status-") and parts.path.endswith(".csv"):
            code = int(parts.path[len("/status-") : -len(".csv")])
            self._send(code, "try later", "text/plain", {"Retry-After": "0"})
        elif parts.path == "/published.csv":
            # As a published Google Sheet does: a redirect to where the content is.
            self._send(307, "", "text/html", {"Location": "/sheet.csv"})
        elif parts.path == "/loop.csv":
            self._send(302, "", "text/html", {"Location": "/loop.csv"})
        elif parts.path == "/big.csv":
            self._send(200, "total\n" + "1\n" * 4096, "text/csv")
        elif parts.path == "/slow.csv":
            time.sleep(2)
            self._send(200, "total\n1\n", "text/csv")
        else:
            self._json(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path == "/rest/api/3/search/approximate-count":
            self._jira_cloud(body)
        else:
            self._json(404, {"errorMessages": ["Not found"]})

    # -- Jira ----------------------------------------------------------------------------

    def _jira_cloud(self, body: bytes) -> None:
        pair = base64.b64encode(f"{EMAIL}:{JIRA_TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {pair}":
            self._json(401, {"errorMessages": ["You are not authenticated."], "errors": {}})
            return
        try:
            jql = json.loads(body).get("jql")
        except ValueError:
            self._json(400, {"errorMessages": ["Invalid request payload."], "errors": {}})
            return
        self._jira_answer(jql, lambda n: {"count": n})

    def _jira_dc(self, query: dict[str, str]) -> None:
        if self.headers.get("Authorization") != f"Bearer {JIRA_PAT}":
            self._json(401, {"errorMessages": ["You are not authenticated."], "errors": {}})
            return
        if query.get("maxResults") != "0":
            self._json(400, {"errorMessages": ["this test server only counts"], "errors": {}})
            return
        self._jira_answer(
            query.get("jql"),
            lambda n: {"startAt": 0, "maxResults": 0, "total": n, "issues": []},
        )

    def _jira_answer(self, jql: object, shape: object) -> None:
        assert callable(shape)
        if not jql:
            msg = "Unbounded JQL queries are not allowed here. Please add a search restriction."
            self._json(400, {"errorMessages": [msg], "errors": {}})
        elif jql == "project = SLOW":
            time.sleep(2)
            self._json(200, shape(1))
        elif jql == "project = BUSY":
            self._json(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": "0"})
        elif jql == "project = DOWN":
            self._json(503, {"errorMessages": ["Service unavailable"]})
        elif jql == "project = SHAPE":
            self._json(200, {"issues": []})
        elif jql in JQL_COUNTS:
            self._json(200, shape(JQL_COUNTS[str(jql)]))
        else:
            self._json(
                400,
                {"errorMessages": [f"Error in the JQL Query: {jql!r} is not known here."]},
            )

    # -- GitHub --------------------------------------------------------------------------

    def _github(self, query: dict[str, str]) -> None:
        auth = self.headers.get("Authorization")
        if auth is not None and auth != f"Bearer {GITHUB_TOKEN}":
            self._json(
                401,
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                },
            )
            return
        if self.headers.get("Accept") != "application/vnd.github+json" or not self.headers.get(
            "X-GitHub-Api-Version"
        ):
            self._json(415, {"message": "Unsupported media type or API version"})
            return
        q = query.get("q")
        if not q:
            self._json(422, {"message": "Validation Failed", "errors": [{"field": "q"}]})
            return
        limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(RESET_AT)}
        if "label:ratelimited-once" in q and self._hit(self.path) == 1:
            self._json(403, {"message": "API rate limit exceeded"}, limited)
        elif "label:ratelimited-long" in q:
            long = {**limited, "x-ratelimit-reset": str(RESET_AT + 3600)}
            self._json(403, {"message": "API rate limit exceeded"}, long)
        elif "label:secondary" in q and self._hit(self.path) == 1:
            self._json(403, {"message": "secondary rate limit"}, {"retry-after": "1"})
        elif "label:too-many" in q:
            self._json(429, {"message": "Too many requests"}, limited)
        elif "label:forbidden" in q:
            self._json(403, {"message": "Resource not accessible by integration"})
        elif "label:down" in q:
            self._json(503, {"message": "Service unavailable"})
        elif "label:slow" in q:
            time.sleep(2)
            self._json(200, {"total_count": 1, "incomplete_results": False, "items": []})
        elif "label:incomplete" in q:
            self._json(200, {"total_count": 3, "incomplete_results": True, "items": []})
        elif "label:shape" in q:
            self._json(200, {"items": []})
        elif "label:ratelimited-once" in q or "label:secondary" in q:
            self._json(200, {"total_count": 6, "incomplete_results": False, "items": []})
        elif q in Q_COUNTS:
            self._json(200, {"total_count": Q_COUNTS[q], "incomplete_results": False, "items": []})
        else:
            self._json(200, {"total_count": 0, "incomplete_results": False, "items": [], "q": q})

    # -- plumbing ------------------------------------------------------------------------

    def _hit(self, key: str) -> int:
        with self.lock:
            self.hits[key] += 1
            return self.hits[key]

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body), "application/json", headers)

    def _send(
        self, status: int, text: str, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def start() -> ThreadingHTTPServer:
    """Start the server on a free port in a daemon thread.

    Returns:
        The running server.
    """
    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
