"""The built-in connectors run the same contract suite as any third-party one.

SQL runs on SQLite, and again on PostgreSQL; the scenarios that need a server (a statement
timeout, a login refused) use the PostgreSQL test server, the unreachable server a free port
nothing listens on. The test server trusts every login, so a wrong password cannot be
refused; an unknown role is, and must be a fatal error (no retry fixes a login).
HTTP runs against the local test API in ``http_server.py`` with a no-op sleep between
retries, so no test waits for a backoff.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from okr_pipeline.connectors.base import BaseSource, SourceEnvironment
from okr_pipeline.connectors.http import HttpSource
from okr_pipeline.connectors.sql import SqlSource
from okr_pipeline.connectors.testing import Case, ConnectorContract
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors import http_server

SECRET = "ctr-8e0b3d51-SECRET"
PG_PASSWORD = "pgpw-5c2e81d0-SECRET"  # trust auth: accepted, and must never be shown


def _free_port() -> int:
    # Bound then released: nothing listens there for the short life of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestSqlContract(ConnectorContract):
    source_class = SqlSource
    expected_value = Decimal("41.5")
    not_applicable: ClassVar[Mapping[str, str]] = {
        "rate_limited": "a database has no 429; a server that cannot be reached is server_error"
    }

    def environment(self) -> SourceEnvironment:
        return SourceEnvironment(
            connections={"wh": ConnectionSettings(url=SecretStr(self.fixture("sqlite_url")))},
            secrets={"unused": SecretStr(SECRET)},
        )

    def valid_config(self) -> Mapping[str, Any]:
        return {"type": "sql", "connection": "wh", "query": "SELECT 41.5 AS value"}

    def _postgres(self, **parts: Any) -> SourceEnvironment:
        url = sa.make_url(self.fixture("postgres_url")).set(password=PG_PASSWORD, **parts)
        settings = ConnectionSettings(url=SecretStr(url.render_as_string(hide_password=False)))
        return SourceEnvironment(
            connections={"pg": settings}, secrets={"unused": SecretStr(SECRET)}
        )

    def failing_config(self, scenario: str) -> Mapping[str, Any] | Case | None:
        on_pg = {"type": "sql", "connection": "pg", "query": "SELECT 1"}
        if scenario == "timeout":
            config = {**on_pg, "query": "SELECT pg_sleep(5)", "timeout_seconds": 0.2}
            return Case(config, self._postgres())
        if scenario == "server_error":
            url = f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:{_free_port()}/x"
            down = ConnectionSettings(url=SecretStr(url), timeout_seconds=2)
            return Case(on_pg, SourceEnvironment(connections={"pg": down}))
        if scenario == "unauthorized":
            return Case(on_pg, self._postgres(username=f"okr_nobody_{uuid.uuid4().hex[:8]}"))
        if scenario == "bad_shape":
            return {**self.valid_config(), "query": "SELECT 1 AS value UNION ALL SELECT 2"}
        return None


@pytest.mark.postgres
class TestSqlPostgresContract(TestSqlContract):
    def environment(self) -> SourceEnvironment:
        env = self._postgres()
        return SourceEnvironment(connections={"wh": env.connections["pg"]}, secrets=env.secrets)


class TestHttpContract(ConnectorContract):
    source_class = HttpSource
    expected_value = Decimal(99)

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return HttpSource(env, sleep=lambda seconds: None)

    def environment(self) -> SourceEnvironment:
        api = ConnectionSettings(
            url=SecretStr(self.fixture("http_base_url")),
            timeout_seconds=5,
            headers={"X-Tenant": SecretStr(http_server.TENANT_HEADER_VALUE)},
        )
        return SourceEnvironment(
            connections={"api": api},
            secrets={
                "tok": SecretStr(http_server.SECRETS["api_token"]),
                "wrong": SecretStr(SECRET),
            },
        )

    def valid_config(self) -> Mapping[str, Any]:
        return {
            "type": "http",
            "connection": "api",
            "path": "/bearer",
            "value_path": "$.total",
            "auth": {"type": "bearer", "secret": "tok"},
        }

    def failing_config(self, scenario: str) -> Mapping[str, Any] | None:
        # The wrong token goes out as a header and a query parameter; the /echo endpoints
        # quote both back, so the message must have them redacted.
        sent = {
            "auth": {"type": "bearer", "secret": "wrong"},
            "params": {"token": "${secret:wrong}"},
        }
        paths: dict[str, dict[str, Any]] = {
            "timeout": {"path": "/slow", "params": {"seconds": "2"}, "timeout_seconds": 0.2},
            "rate_limited": {"path": "/echo-status/429", **sent},
            "server_error": {"path": "/echo-status/503", **sent},
            "unauthorized": {"path": "/bearer", "auth": sent["auth"]},
            "bad_shape": {"path": "/echo", **sent, "value_path": "$.query"},
        }
        return {**self.valid_config(), "retries": 1, **paths[scenario]}

    @pytest.mark.parametrize(
        "leak",
        [
            {"headers": {"Authorization": f"Bearer {SECRET}"}},
            {"url": f"https://bob:{SECRET}@x.test/m?api_key={SECRET}"},
            {"params": {"access_token": SECRET}},
        ],
    )
    def test_literal_secrets_never_in_repr(self, leak: dict[str, Any]) -> None:
        raw = {"type": "http", "value_path": "$.v", "url": "https://x.test/m", **leak}
        config = self.source_class.config_model.model_validate(raw)
        assert SECRET not in repr(config) and SECRET not in str(config)
