"""A local server answering like Google (sign-in and GA4 runReport), Amplitude and Datadog.

The shapes are copied from the vendors' public documentation:

- Google's service-account sign-in:
  https://developers.google.com/identity/protocols/oauth2/service-account#httprest
  (``POST token_uri``, form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
  ``assertion``; answer ``{"access_token", "expires_in", "token_type": "Bearer"}``; a bad
  assertion is ``400 {"error": "invalid_grant", "error_description": ...}``).
- GA4 Data API runReport:
  https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport
  and https://developers.google.com/analytics/devguides/reporting/data/v1/basics
  (``POST /v1beta/properties/{id}:runReport`` with ``dateRanges``, ``metrics``; answer
  ``metricHeaders``, ``rows[].metricValues[].value`` as strings, no ``rows`` when empty;
  errors ``{"error": {"code", "message", "status"}}``).
- Amplitude Dashboard REST API, event segmentation:
  https://amplitude.com/docs/apis/analytics/dashboard-rest
  (``GET /api/2/events/segmentation`` with ``e``, ``m``, ``start``, ``end`` ``YYYYMMDD``,
  ``i``; HTTP Basic api_key:secret_key; answer ``data.series``, ``data.seriesLabels``,
  ``data.seriesCollapsed[][{setId, value}]``, ``data.xValues``).
- Datadog, query timeseries points:
  https://docs.datadoghq.com/api/latest/metrics/query-timeseries-points/
  (``GET /api/v1/query`` with ``from``, ``to`` in seconds and ``query``; headers
  ``DD-API-KEY``, ``DD-APPLICATION-KEY``; answer ``{"status": "ok", "series":
  [{"pointlist": [[ms, value]...], "scope", ...}], "from_date", "to_date"}``; errors
  ``{"errors": [...]}``, 403 for keys it does not know).

The data are synthetic and computable by hand (see each handler). Names trigger the
contract's failures: GA4 properties 408 (slow), 429, 503 and 422 (bad shape); Amplitude
events and Datadog queries named ``slow``, ``busy``, ``down``, ``odd``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HOST = "127.0.0.1"
GA_PROPERTY = "123456789"
GA_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
SERVICE_ACCOUNT = "okr-reader@okr-test.iam.gserviceaccount.com"
# Distinctive values, so a grep over the cassettes proves none was recorded.
AMPLITUDE_API_KEY = "amp-key-4d1e7b09c2-SECRET"
AMPLITUDE_SECRET_KEY = "amp-sec-9a03f6e2b8-SECRET"
DD_API_KEY = "dd-api-61c8e2f0a4-SECRET"
DD_APP_KEY = "dd-app-0b7d93a5e1-SECRET"
ALL_SECRET_VALUES = (AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY, DD_API_KEY, DD_APP_KEY)
#: Access tokens this server issues look like Google's, so they can be found and scrubbed.
ACCESS_TOKEN = re.compile(r"ya29\.[A-Za-z0-9_-]+")

#: Sessions per day on the GA4 property: the day of the month (so ranges sum by hand).
#: activeUsers is a constant 7 a day; keyEvents has no data (no rows).
GA_METRICS = ("sessions", "activeUsers", "keyEvents")
#: Country filter: France has a third of the sessions; any other country none.
GA_COUNTRIES = {"France": Decimal(1) / 3}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__((HOST, 0), Handler)
        self.clock = clock
        self.public_keys: dict[str, rsa.RSAPublicKey] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.token_lifetime = 3599
        self.assertions: list[str] = []  # every JWT received, for the leak checks

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up (the timeout scenario) are expected


class Handler(BaseHTTPRequestHandler):
    """Routes the three vendors' paths; see the module docstring."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _count(self, what: str) -> None:
        with self.server.lock:
            self.server.hits[what] += 1

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path == "/api/2/events/segmentation":
            self._amplitude(query)
        elif parts.path == "/api/v1/query":
            self._datadog(query)
        else:
            self._json(404, {"error": f"no route GET {parts.path}"})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == "/token":
            self._token(raw)
        elif m := re.fullmatch(r"/v1beta/properties/([^/:]+):runReport", path):
            self._run_report(m.group(1), raw)
        else:
            self._json(404, {"error": f"no route POST {path}"})

    # -- Google sign-in --------------------------------------------------------------------

    def _token(self, raw: bytes) -> None:
        self._count("token")
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            self._grant_error("invalid_request", "Invalid content type")
            return
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self._grant_error("unsupported_grant_type", "Invalid grant_type")
            return
        with self.server.lock:
            self.server.assertions.append(form.get("assertion", ""))
        problem = self._check_assertion(form.get("assertion", ""))
        if problem:
            self._grant_error("invalid_grant", problem)
            return
        token = "ya29." + secrets.token_urlsafe(24)
        with self.server.lock:
            self.server.tokens[token] = self.server.clock() + self.server.token_lifetime
        self._json(
            200,
            {
                "access_token": token,
                "expires_in": self.server.token_lifetime,
                "token_type": "Bearer",
            },
        )

    def _grant_error(self, error: str, description: str) -> None:
        self._json(400, {"error": error, "error_description": description})

    def _check_assertion(self, jwt: str) -> str | None:
        """What Google checks: the signature by the account's key, then the claims."""
        pieces = jwt.split(".")
        if len(pieces) != 3:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
        try:
            header, claims = (json.loads(_unb64(p)) for p in pieces[:2])
            signature = _unb64(pieces[2])
        except ValueError:
            return "Invalid JWT"
        if header.get("alg") != "RS256":
            return "Invalid JWT: the algorithm must be RS256"
        key = self.server.public_keys.get(str(claims.get("iss")))
        if key is None:
            return "Invalid grant: account not found"
        try:
            key.verify(
                signature,
                f"{pieces[0]}.{pieces[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        now = self.server.clock()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return "Invalid JWT: iat and exp are required"
        if iat > now + 60 or exp <= now or exp - iat > 3600:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
        token_uri = f"http://{self.headers.get('Host')}/token"
        if claims.get("aud") != token_uri:
            return f"Invalid JWT: audience must be {token_uri}"
        if GA_SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid OAuth scope or ID token audience provided."
        return None

    # -- GA4 runReport -----------------------------------------------------------------------

    def _ga_error(self, code: int, status: str, message: str) -> None:
        self._json(code, {"error": {"code": code, "message": message, "status": status}})

    def _run_report(self, property_id: str, raw: bytes) -> None:
        self._count("runReport")
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        with self.server.lock:
            expiry = self.server.tokens.get(token) if auth.startswith("Bearer ") else None
        if expiry is None or expiry <= self.server.clock():
            self._ga_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
            return
        if property_id == "408":
            time.sleep(2)
        if property_id == "429":
            self._ga_error(429, "RESOURCE_EXHAUSTED", "Exhausted property tokens per hour.")
            return
        if property_id == "503":
            self._ga_error(503, "UNAVAILABLE", "The service is currently unavailable.")
            return
        try:
            body = json.loads(raw)
            ranges = body["dateRanges"]
            first = date.fromisoformat(ranges[0]["startDate"])
            last = date.fromisoformat(ranges[0]["endDate"])
            metrics = [m["name"] for m in body["metrics"]]
        except (ValueError, KeyError, IndexError, TypeError):
            self._ga_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
            return
        if len(ranges) != 1 or first > last or not metrics:
            self._ga_error(400, "INVALID_ARGUMENT", "Invalid dateRanges or metrics.")
            return
        unknown = [name for name in metrics if name not in GA_METRICS]
        if unknown:
            self._ga_error(400, "INVALID_ARGUMENT", f"Field {unknown[0]} is not a valid metric.")
            return
        if property_id == "422":
            self._json(200, {"rows": [{"dimensionValues": []}], "rowCount": 1})
            return
        if property_id != GA_PROPERTY:
            self._ga_error(
                403,
                "PERMISSION_DENIED",
                "User does not have sufficient permissions for this property.",
            )
            return
        share = Decimal(1)
        if "dimensionFilter" in body:
            country = body["dimensionFilter"].get("filter", {}).get("stringFilter", {})
            share = GA_COUNTRIES.get(country.get("value"), Decimal(0))
        values = [_ga_value(name, first, last, share) for name in metrics]
        answer: dict[str, Any] = {
            "metricHeaders": [{"name": name, "type": "TYPE_INTEGER"} for name in metrics],
            "metadata": {"currencyCode": "EUR", "timeZone": "Europe/Paris"},
            "kind": "analyticsData#runReport",
        }
        if any(values):
            answer["rows"] = [{"metricValues": [{"value": str(v)} for v in values]}]
            answer["rowCount"] = 1
        self._json(200, answer)

    # -- Amplitude event segmentation ------------------------------------------------------

    def _amplitude(self, query: dict[str, str]) -> None:
        self._count("segmentation")
        expected = base64.b64encode(f"{AMPLITUDE_API_KEY}:{AMPLITUDE_SECRET_KEY}".encode())
        if self.headers.get("Authorization") != f"Basic {expected.decode()}":
            self._json(401, {"error": "Invalid API key or secret key"})
            return
        missing = [name for name in ("e", "start", "end") if not query.get(name)]
        if missing:
            self._json(400, {"error": f"Missing required parameter: {missing[0]}"})
            return
        try:
            event = json.loads(query["e"])
            first = datetime.strptime(query["start"], "%Y%m%d").date()
            last = datetime.strptime(query["end"], "%Y%m%d").date()
        except ValueError:
            self._json(400, {"error": "Invalid e, start or end"})
            return
        metric = query.get("m", "uniques")
        if not isinstance(event, dict) or "event_type" not in event or first > last:
            self._json(400, {"error": "Invalid event or range"})
            return
        if metric not in {"uniques", "totals", "pct_dau", "average"} or query.get("i") != "1":
            self._json(400, {"error": "Invalid m or i"})
            return
        name = event["event_type"]
        if self._misbehave(name, {"error": "Amplitude is busy"}):
            return
        if name == "odd":
            self._json(200, {"data": {"series": [[1]], "xValues": ["2024-05-01"]}})
            return
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        groups = ["iOS", "Android"] if event.get("group_by") else [""]
        if name == "Never Fired":
            series: list[list[int]] = []
            collapsed: list[list[dict[str, Any]]] = []
        else:
            # Totals: 10 events a day; uniques: 4 users a day, 2 + days of them over the
            # range (users come back, so the range's uniques are not the daily sum).
            daily = [10 if metric == "totals" else 4 for _ in days]
            whole = sum(daily) if metric == "totals" else 2 + len(days)
            series = [daily for _ in groups]
            collapsed = [[{"setId": group, "value": whole}] for group in groups]
        self._json(
            200,
            {
                "data": {
                    "series": series,
                    "seriesLabels": [0 for _ in series],
                    "seriesCollapsed": collapsed,
                    "xValues": [day.isoformat() for day in days],
                }
            },
        )

    def _misbehave(self, name: str, error: dict[str, Any]) -> bool:
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

    # -- Datadog metrics query -----------------------------------------------------------------

    def _datadog(self, query: dict[str, str]) -> None:
        self._count("query")
        api_key = self.headers.get("DD-API-KEY")
        app_key = self.headers.get("DD-APPLICATION-KEY")
        if api_key != DD_API_KEY or app_key != DD_APP_KEY:
            self._json(403, {"errors": ["Forbidden"]})
            return
        missing = [name for name in ("from", "to", "query") if not query.get(name)]
        if missing:
            self._json(
                400, {"errors": [f"The value provided for parameter '{missing[0]}' is invalid"]}
            )
            return
        try:
            start, end = int(query["from"]), int(query["to"])
        except ValueError:
            self._json(400, {"errors": ["from and to must be integers"]})
            return
        text = query["query"]
        # "aggregation:metric{scope} by {tags}": the metric name sits after the first colon.
        found = re.match(r"(?:[a-z]+:)?([A-Za-z0-9_.]+)", text)
        metric = found.group(1) if found else ""
        if self._misbehave(metric, {"errors": ["Datadog is busy"]}):
            return
        if metric == "odd":
            self._json(200, {"status": "ok", "series": [{"points": [1, 2]}]})
            return
        # Hourly points on the hour within [from, to]: the value is the hour of the day
        # (metric "web.hits"), or a constant 5 (metric "web.queue"); "web.none" has none;
        # "by {host}" splits into two series; the point at 06:00 is a gap (null).
        hours = range(-(-start // 3600) * 3600, end + 1, 3600)
        points: list[list[Any]] = []
        for stamp in hours:
            hour = datetime.fromtimestamp(stamp, UTC).hour
            value = None if hour == 6 else (hour if metric == "web.hits" else 5)
            points.append([stamp * 1000, value])
        scopes = ["host:a", "host:b"] if "by {host}" in text else ["*"]
        series = [
            {
                "metric": metric,
                "display_name": metric,
                "expression": text,
                "scope": scope,
                "tag_set": [scope] if scope != "*" else [],
                "pointlist": points,
                "start": start * 1000,
                "end": end * 1000,
                "interval": 3600,
                "length": len(points),
                "aggr": text.split(":")[0] if ":" in text else None,
                "unit": None,
            }
            for scope in scopes
            if metric != "web.none"
        ]
        self._json(
            200,
            {
                "status": "ok",
                "res_type": "time_series",
                "resp_version": 1,
                "query": text,
                "from_date": start * 1000,
                "to_date": end * 1000,
                "series": series,
                "group_by": ["host"] if len(scopes) > 1 else [],
                "message": "",
            },
        )


def _ga_value(metric: str, first: date, last: date, share: Decimal) -> Decimal:
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if metric == "sessions":
        total = Decimal(sum(day.day for day in days))
    elif metric == "activeUsers":
        total = Decimal(7 * len(days))
    else:
        total = Decimal(0)
    return (total * share).quantize(Decimal(1))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def start(clock: Callable[[], float] = time.time) -> _Server:
    """Start the server on a free port in a daemon thread; ``shutdown()`` stops it.

    Args:
        clock: The server's "now" in Unix time: JWT times and token expiry are judged by it.
    """
    server = _Server(clock)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The base URL of a running server, e.g. ``http://127.0.0.1:40123``."""
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
