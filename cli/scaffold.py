"""The package ``okr connector new`` writes: a connector for a JSON API, ready to adapt.

The templates are strings here (no package data to map). ``__NAME__`` is the source type
(``acme_crm``), ``__DIST__`` the distribution (``okr-acme-crm``), ``__MODULE__`` the import
package (``okr_acme_crm``) and ``__CLASS__`` the class prefix (``AcmeCrm``). The generated
tests pass as written: a local server answers in the shape the connector expects, the
contract suite runs against it, and a vcrpy cassette is recorded from it once
(``OKR_VCR_RECORD_MODE=once``) and replayed after (the default record mode is ``none``).
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from okr_pipeline.okr_core.errors import ConfigError

__all__ = ["NAME_RULE", "check_name", "write_connector_package"]

NAME_RULE = "lowercase letters, digits and underscores, starting with a letter (e.g. acme_crm)"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def check_name(name: str, installed: set[str]) -> None:
    """Refuse a connector name that cannot be a source type and a Python package name.

    Args:
        name: The name asked for.
        installed: Source types already installed (a new one must not shadow them).

    Raises:
        ConfigError: The name is not an identifier of the rule, a Python keyword, or the
            name of an installed connector.
    """
    if not _NAME.fullmatch(name) or name.endswith("_") or "__" in name:
        raise ConfigError(f"connector name {name!r} is not valid: use {NAME_RULE}")
    if keyword.iskeyword(name):
        raise ConfigError(f"connector name {name!r} is a Python keyword; choose another")
    if name in installed:
        raise ConfigError(
            f"a connector named {name!r} is already installed ('okr connectors' lists them); "
            "choose another name"
        )


def write_connector_package(name: str, directory: Path) -> list[Path]:
    """Write the package of a new connector ``name`` into ``directory``.

    Args:
        name: The source type, already checked by :func:`check_name`.
        directory: Where to write; must not exist or be empty.

    Returns:
        The files written, in order.

    Raises:
        ConfigError: ``directory`` exists and is not an empty folder.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"'{directory}' exists and is not empty; choose another --dir")
    names = {
        "__NAME_UPPER__": name.upper(),
        "__NAME__": name,
        "__DIST__": "okr-" + name.replace("_", "-"),
        "__MODULE__": f"okr_{name}",
        "__CLASS__": "".join(part.capitalize() for part in name.split("_")),
    }
    written = []
    for relative, template in TEMPLATES.items():
        path = directory / _fill(relative, names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template, names), encoding="utf-8")
        written.append(path)
    (directory / "tests" / "cassettes").mkdir(exist_ok=True)
    return written


def _fill(text: str, names: dict[str, str]) -> str:
    for placeholder, value in names.items():
        text = text.replace(placeholder, value)
    return text


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "okr-pipeline connector: __NAME__"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["okr-pipeline"]

[project.optional-dependencies]
test = ["okr-pipeline[testing]", "pytest>=8", "vcrpy>=6"]

# okr-pipeline finds the connector here: the source type is the entry point's name.
[project.entry-points."okr.connectors"]
__NAME__ = "__MODULE__.source:__CLASS__Source"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_README = """\
# __DIST__

An [okr-pipeline](https://pypi.org/project/okr-pipeline/) connector: source type `__NAME__`.

```sh
pip install -e '.[test]'
okr connectors            # lists __NAME__
pytest                    # the contract suite and the cassette replay
```

## Use it in a KR

```yaml
source:
  type: __NAME__
  metric: signups
  period: 7d               # cycle, 1d, 7d, 28d, 30d or 90d, ending at the KR's as-of
  api_key_secret: __NAME___key
```

Settings: `OKR_SECRETS____NAME_UPPER___KEY=...` (the API key). A `connection: <name>` with
`OKR_CONNECTIONS__<NAME>__URL` replaces the service's base URL (a self-hosted instance, a
region, a proxy, or a local server in tests).

## Make it read your service

`src/__MODULE__/source.py` says only what is particular to the service:
`__CLASS__SourceConfig` (the KR's fields, each with a description; secrets by name),
`build_call` (the documented request: path, parameters, auth header) and `read_value`
(where the number sits in the documented answer; `dig` names the keys it found when the
shape is wrong). Timeouts, retries (429 and 5xx), the size cap and redaction come from
`okr_pipeline.connectors.api_source.ApiSource`.

## Tests

- `tests/__NAME___server.py`: a local server answering in the service's documented
  shapes (change it with the connector; cite the documentation you copied the shapes from).
  It checks the auth header and the required parameters and answers 401 / 400 like the
  service.
- `tests/test___NAME__.py`: the contract suite (`ConnectorContract`: errors classified,
  no secret in messages or reprs, thread safety) against that server, and a cassette test.
- `tests/cassette.py`: the vcrpy setup. Secrets and the server's address never reach a
  cassette (they are replaced before recording), so cassettes replay on any port.
  Record with `OKR_VCR_RECORD_MODE=once pytest`, commit `tests/cassettes/`, and CI replays
  them (the default record mode is `none`: a request missing from a cassette fails).
  Never edit a cassette by hand; delete it and record it again.
"""

_INIT = '''\
"""okr-pipeline connector ``__NAME__``."""

from __MODULE__.source import __CLASS__Source, __CLASS__SourceConfig

__all__ = ["__CLASS__Source", "__CLASS__SourceConfig"]
'''

_SOURCE = '''\
"""The ``__NAME__`` source: one number from the service's JSON API.

Adapt :meth:`__CLASS__Source.build_call` (the request) and :meth:`__CLASS__Source.read_value`
(where the number is in the answer) to the service's API documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    dig,
    period_bounds,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext


class __CLASS__SourceConfig(ApiSourceConfig):
    """A metric of the service, over a window ending at the KR's as-of."""

    type: Literal["__NAME__"] = Field(description="Source type: __NAME__.")
    metric: str = Field(min_length=1, description="The metric to read, e.g. 'signups'.")
    period: Period = Field(
        "cycle", description="Window ending at the as-of: cycle, 1d, 7d, 28d, 30d or 90d."
    )
    api_key_secret: SecretName = Field(
        description="Name of the secret holding the API key (OKR_SECRETS__<NAME>)."
    )

    def secret_names(self) -> set[str]:
        """The API key's secret.

        Returns:
            ``{api_key_secret}``.
        """
        return {self.api_key_secret}


class __CLASS__Source(ApiSource[__CLASS__SourceConfig]):
    """Reads one metric of the service over a window ending at the as-of."""

    type_name = "__NAME__"
    config_model = __CLASS__SourceConfig
    default_base_url = "https://api.__NAME__.example"
    reads = "a metric over a window ending at the as-of"
    authentication = "API key (secret) as a bearer token"
    tested_against = "documented shapes (local server)"

    def build_call(
        self,
        config: __CLASS__SourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``GET /v1/metrics/<metric>?from=...&to=...`` with the key as a bearer token."""
        start, end = period_bounds(config.period, ctx)
        return ApiCall(
            method="GET",
            url=f"{base_url}/v1/metrics/{quote(config.metric, safe='')}",
            params={"from": start.isoformat(), "to": end.isoformat()},
            headers={"Authorization": f"Bearer {secrets[config.api_key_secret]}"},
        )

    def read_value(self, config: __CLASS__SourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """The number at ``data.value`` (null: no data)."""
        return dig(answer, "data", "value")
'''

_SERVER = '''\
"""A local server answering like the service's API, on a free port.

Copy the request and answer shapes from the service's API documentation (and cite it here):
the server checks what the documentation requires and answers 401 / 400 as the service does.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

#: A distinctive key, so that a grep of the cassettes proves it was not recorded.
API_KEY = "__NAME__-key-5c1e9a77d3-SECRET"

#: Metric -> (status, answer). "slow" answers after SLOW_SECONDS.
ANSWERS = {
    "signups": (200, {"data": {"value": 42, "unit": "count"}}),
    "empty": (200, {"data": {"value": None}}),
    "limited": (429, {"error": "rate limit exceeded"}),
    "broken": (500, {"error": "internal error"}),
    "odd": (200, {"result": [1, 2]}),
    "slow": (200, {"data": {"value": 1}}),
}
SLOW_SECONDS = 2.0


class Handler(BaseHTTPRequestHandler):
    """``GET /v1/metrics/<metric>?from=&to=`` with ``Authorization: Bearer <key>``."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._answer(401, {"error": "invalid API key"})
            return
        if not parts.path.startswith("/v1/metrics/"):
            self._answer(404, {"error": "not found"})
            return
        if "from" not in query or "to" not in query:
            self._answer(400, {"error": "from and to are required"})
            return
        metric = parts.path.removeprefix("/v1/metrics/")
        status, body = ANSWERS.get(metric, (404, {"error": f"unknown metric {metric}"}))
        if metric == "slow":
            time.sleep(SLOW_SECONDS)
        self._answer(status, body)

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the tests say what failed."""


def start() -> ThreadingHTTPServer:
    """Start the server on a free port of 127.0.0.1, in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The server's base URL."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
'''

_CASSETTE = '''\
"""One vcrpy setup for the cassettes: secrets filtered, any port, ``none`` by default.

Record against the local server with ``OKR_VCR_RECORD_MODE=once pytest``; without it the
cassettes replay and a request that is not in them fails (what CI runs). Secret values and
the server's address are replaced before anything is recorded, and live requests are
rewritten the same way before they are matched, so a cassette replays on any port.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import vcr

from __NAME___server import API_KEY

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("OKR_VCR_RECORD_MODE", "none")
SECRET_VALUES = (API_KEY,)
SCRUBBED = "<SCRUBBED>"
PLACEHOLDER_BASE = "http://test-api.invalid"
_LOCAL_BASE = re.compile(r"http://127\\.0\\.0\\.1:\\d+")


def scrub(text: str) -> str:
    """``text`` with every secret value and the local server's address replaced."""
    for value in SECRET_VALUES:
        text = text.replace(value, SCRUBBED)
    return _LOCAL_BASE.sub(PLACEHOLDER_BASE, text)


def _request(request: Any) -> Any:
    request.uri = scrub(request.uri)
    if request.body:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        request.body = scrub(body).encode()
    for name in list(request.headers):
        request.headers[name] = scrub(str(request.headers[name]))
    return request


def _response(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    if isinstance(body, bytes):
        response["body"]["string"] = scrub(body.decode("utf-8", "replace")).encode()
    response["headers"] = {
        name: [scrub(value) for value in values] for name, values in response["headers"].items()
    }
    return response


VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode=RECORD_MODE,
    match_on=["method", "scheme", "host", "port", "path", "query"],
    filter_headers=["authorization", "x-api-key", "cookie", "set-cookie"],
    filter_query_parameters=["api_key", "key", "token", "access_token"],
    before_record_request=_request,
    before_record_response=_response,
    decode_compressed_response=True,
)
'''

_CONFTEST = '''\
"""Fixtures: the local server for the whole session, and a fixed evaluation context."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import __NAME___server
from okr_pipeline.connectors.base import SourceContext


@pytest.fixture(scope="session")
def api_url() -> Iterator[str]:
    """Base URL of the local server (a free port)."""
    server = __NAME___server.start()
    yield __NAME___server.url_of(server)
    server.shutdown()
    server.server_close()


@pytest.fixture
def ctx() -> SourceContext:
    """As of 1 May 2024 noon UTC, in the cycle 2024 Q2."""
    return SourceContext(
        as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
        cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
        kr_ref="growth/signups",
    )
'''

_TEST = '''\
"""The ``__NAME__`` connector: the contract suite, the window, and the cassette."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from __MODULE__.source import __CLASS__Source, __CLASS__SourceConfig
from __NAME___server import API_KEY
from cassette import CASSETTES, RECORD_MODE, SECRET_VALUES, VCR
from okr_pipeline.connectors.base import BaseSource, SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.testing import Case, ConnectorContract
from okr_pipeline.okr_core.settings import ConnectionSettings

CASSETTE = "signups.yaml"
WRONG_KEY = "wrong-key-0f9e8d7c6b-SECRET"


def environment(api_url: str, key: str = API_KEY) -> SourceEnvironment:
    """The connection "local" pointing at the server, and the API key secret."""
    return SourceEnvironment(
        connections={"local": ConnectionSettings(url=SecretStr(api_url), timeout_seconds=5)},
        secrets={"__NAME___key": SecretStr(key)},
    )


def config(metric: str = "signups", **more: Any) -> dict[str, Any]:
    """A ``source:`` mapping as an OKR file holds it."""
    return {
        "type": "__NAME__",
        "connection": "local",
        "metric": metric,
        "period": "7d",
        "api_key_secret": "__NAME___key",
        **more,
    }


class Test__CLASS__Contract(ConnectorContract):
    """The checks every connector passes, against the local server."""

    source_class = __CLASS__Source
    expected_value = Decimal(42)
    threads: ClassVar[int] = 8

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return __CLASS__Source(env, sleep=lambda seconds: None)

    def environment(self) -> SourceEnvironment:
        return environment(self.fixture("api_url"))

    def valid_config(self) -> Mapping[str, Any]:
        return config()

    def failing_config(self, scenario: str) -> Mapping[str, Any] | Case | None:
        fast = {"retries": 0, "backoff_seconds": 0}
        if scenario == "unauthorized":
            return Case(config(), environment(self.fixture("api_url"), key=WRONG_KEY))
        return {
            "timeout": config("slow", timeout_seconds=0.3, **fast),
            "rate_limited": config("limited", **fast),
            "server_error": config("broken", **fast),
            "bad_shape": config("odd"),
        }.get(scenario)


def test_a_wrong_key_is_fatal_and_redacted(api_url: str, ctx: SourceContext) -> None:
    with (
        __CLASS__Source(environment(api_url, key=WRONG_KEY)) as source,
        pytest.raises(FatalSourceError) as caught,
    ):
        source.fetch(__CLASS__SourceConfig.model_validate(config()), ctx)
    assert "401" in str(caught.value)
    assert WRONG_KEY not in str(caught.value)


def test_no_data_is_none_never_zero(api_url: str, ctx: SourceContext) -> None:
    with __CLASS__Source(environment(api_url)) as source:
        assert source.fetch(__CLASS__SourceConfig.model_validate(config("empty")), ctx) is None


def test_the_window_ends_at_the_as_of(api_url: str, ctx: SourceContext) -> None:
    with __CLASS__Source(environment(api_url)) as source:
        sent = source.describe(__CLASS__SourceConfig.model_validate(config()), ctx)
    assert "from=2024-04-24T12:00:00+00:00" in sent
    assert "to=2024-05-01T12:00:00+00:00" in sent
    assert API_KEY not in sent


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValidationError) as caught:
        __CLASS__SourceConfig.model_validate(config(period="2w"))
    assert "period" in str(caught.value)


def test_cassette_replays(api_url: str, ctx: SourceContext) -> None:
    if RECORD_MODE == "none" and not (CASSETTES / CASSETTE).exists():
        pytest.skip("no cassette yet: record it with OKR_VCR_RECORD_MODE=once pytest")
    with VCR.use_cassette(CASSETTE) as cassette:
        with __CLASS__Source(environment(api_url)) as source:
            value = source.fetch(__CLASS__SourceConfig.model_validate(config()), ctx)
    assert value == Decimal(42)
    if RECORD_MODE == "none":
        assert cassette.play_count == 1  # answered by the cassette, not the server
    text = (CASSETTES / CASSETTE).read_text()
    assert not any(secret in text for secret in SECRET_VALUES)
    assert "127.0.0.1" not in text
'''

#: Relative path (with placeholders) -> template.
TEMPLATES = {
    "pyproject.toml": _PYPROJECT,
    "README.md": _README,
    "src/__MODULE__/__init__.py": _INIT,
    "src/__MODULE__/source.py": _SOURCE,
    "tests/__NAME___server.py": _SERVER,
    "tests/cassette.py": _CASSETTE,
    "tests/conftest.py": _CONFTEST,
    "tests/test___NAME__.py": _TEST,
}
