"""A failing HTTP source gives one short line (``SourceError.short``) and keeps the whole story.

The run prints the short line beside the KR's name; the full message (request, driver text)
is stored with the measurement for ``okr explain``. Both are redacted and on one line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import (
    FatalSourceError,
    RetriableSourceError,
    SourceError,
    short_message,
)
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.ports import free_port

TOKEN = "tok-4f1c9a-SECRET"
HTML = (
    "<!DOCTYPE html>\n<html>\n<head><title>404 Not Found</title></head>\n<body>\n"
    + ("<p>nothing here</p>\n" * 40)
    + "</body>\n</html>\n"
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if self.path.startswith("/busy") else 404
        body = HTML.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def source(base_url: str) -> Iterator[HttpSource]:
    env = SourceEnvironment(
        connections={"analytics": ConnectionSettings(url=SecretStr(base_url), timeout_seconds=5)},
        secrets={"token": SecretStr(TOKEN)},
    )
    with HttpSource(env) as src:
        yield src


def config(**fields: Any) -> HttpSourceConfig:
    fields.setdefault("value_path", "$.total")
    fields.setdefault("retries", 0)
    return HttpSourceConfig.model_validate({"type": "http", **fields})


def fails(source: HttpSource, ctx: SourceContext, cfg: HttpSourceConfig) -> SourceError:
    with pytest.raises(SourceError) as info:
        source.fetch(cfg, ctx)
    return info.value


def test_connection_refused_is_one_short_line(source: HttpSource, ctx: SourceContext) -> None:
    port = free_port()
    cfg = config(url=f"http://127.0.0.1:{port}/metric", retries=1, backoff_seconds=0.01)
    error = fails(source, ctx, cfg)
    assert isinstance(error, RetriableSourceError)
    assert (
        error.short == f"cannot connect to 127.0.0.1:{port} (connection refused) after 2 attempts"
    )
    # The whole story stays in the message: which KR, which request, the driver's words.
    assert str(error).startswith(f"KR growth/signups: http source GET http://127.0.0.1:{port}")
    assert "Connection refused" in str(error)


def test_404_with_an_html_page_is_one_line(source: HttpSource, ctx: SourceContext) -> None:
    error = fails(source, ctx, config(connection="analytics", path="/api/v1/metrics/ctr"))
    assert isinstance(error, FatalSourceError)
    assert error.short.startswith("HTTP 404 Not Found from 127.0.0.1:")
    assert error.short.endswith("/api/v1/metrics/ctr")
    assert "<" not in error.short
    assert "\n" not in str(error)  # the page is quoted on one line, its start only
    assert "<title>404 Not Found</title>" in str(error)


def test_5xx_after_retries_is_one_short_line(source: HttpSource, ctx: SourceContext) -> None:
    cfg = config(connection="analytics", path="/busy", retries=1, backoff_seconds=0.01)
    error = fails(source, ctx, cfg)
    assert isinstance(error, RetriableSourceError)
    assert error.short.startswith("HTTP 503 Service Unavailable from 127.0.0.1:")
    assert error.short.endswith("/busy after 2 attempts")


def test_secrets_stay_out_of_the_short_line(source: HttpSource, ctx: SourceContext) -> None:
    cfg = config(
        connection="analytics", path="/api/${secret:token}/x", params={"key": "${secret:token}"}
    )
    error = fails(source, ctx, cfg)
    assert TOKEN not in error.short and TOKEN not in str(error)
    assert "/api/***/x" in error.short


def test_long_path_keeps_its_end(source: HttpSource, ctx: SourceContext) -> None:
    path = "/" + "a" * 100 + "/the-metric"
    error = fails(source, ctx, config(connection="analytics", path=path))
    assert error.short.endswith("a/the-metric")
    assert len(error.short) < 120


@pytest.mark.parametrize(
    ("message", "short"),
    [
        (
            "KR o/k: sql source on connection 'w': syntax error",
            "sql source on connection 'w': syntax error",
        ),
        ("KR o/k: line one\nline two", "line one…"),
        ("x" * 500, "x" * 159 + "…"),
        ("o/k: division by zero", "o/k: division by zero"),
    ],
)
def test_short_message_of_any_error(message: str, short: str) -> None:
    assert short_message(message) == short
    assert SourceError(message).short == short
