"""HTTP metric source: one JSON API call, one value picked out with JSONPath.

Works with any JSON API (Prometheus, GA4, internal services): the URL, parameters,
headers and body may use ``${secret:NAME}`` and time placeholders (see
``connectors.templating``), and ``value_path`` picks the number out of the response.
Transient failures (connection errors, timeouts, 429, 5xx) are retried under the one retry
policy (``okr_core.retry``: jittered exponential backoff, ``Retry-After`` honoured); every
message is redacted. The config model is in ``connectors.http_config``.

Time: ``timeout_seconds`` bounds one attempt as a whole (connect, headers and the entire
body; see ``connectors.http_deadline``), so a server trickling its answer cannot hold a
worker. The whole fetch takes at most ``(retries + 1) * timeout_seconds`` plus the waits
between attempts (each at most ``MAX_BACKOFF_SECONDS``). Size: a success answer larger than
``max_response_bytes`` is refused. What a path that matches nothing means (no data, or a
wrong path) is defined in ``connectors.http_extract``.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote, urlsplit

from okr_pipeline.connectors.api_client import ApiCall, ClientSource
from okr_pipeline.connectors.api_source import describe_call
from okr_pipeline.connectors.auth import apply_auth
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.errors import (
    FatalSourceError,
)
from okr_pipeline.connectors.http_config import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_RESPONSE_BYTES_LIMIT,
    HttpSourceConfig,
    ParamValue,
)
from okr_pipeline.connectors.http_deadline import (
    Answer,
)
from okr_pipeline.connectors.http_extract import AnswerError, NotJson, extract_value
from okr_pipeline.connectors.templating import render, render_structure
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, truncate
from okr_pipeline.okr_core.retry import (
    MAX_DELAY_SECONDS,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_BACKOFF_SECONDS",
    "MAX_RESPONSE_BYTES_LIMIT",
    "HttpSource",
    "HttpSourceConfig",
]

MAX_BACKOFF_SECONDS = MAX_DELAY_SECONDS
USER_AGENT = "okr-pipeline"
# An error answer is only quoted (200 characters), so only its start is read.
ERROR_BODY_BYTES = 64 * 1024


class HttpSource(ClientSource[HttpSourceConfig]):
    """Calls a JSON HTTP API and picks one number out of the response with JSONPath.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter; injectable so tests can fix them.
    """

    type_name = "http"
    config_model = HttpSourceConfig
    reads = "any JSON API: one number picked with JSONPath"
    authentication = "bearer, basic or API key (header or query) from secrets"
    tested_against = "real server (a local API the tests start)"

    def fetch(self, config: HttpSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Call the API (with retries) and return the value at ``value_path``.

        Args:
            config: The validated HTTP source config.
            ctx: As-of time and cycle bounds (for placeholders) and the KR reference.

        Returns:
            The value as an exact Decimal; None (no data) when the answer holds null, NaN
            or an empty list where the path exists (``connectors.http_extract``).

        Raises:
            RetriableSourceError: Connection error, no complete answer within the timeout,
                429 or 5xx, after all retries. The fetch takes at most ``retries + 1``
                times the timeout, plus the waits between attempts.
            FatalSourceError: Other 4xx, an answer over ``max_response_bytes``, invalid
                JSON, a path that does not exist in the answer, several matches, not a
                number or out of range.
        """
        call, redact, where = self._call(config, ctx)
        answer = self._client.send(call, where=where, redact=redact)
        return _extract(answer, config.value_path, where, redact)

    def describe(self, config: HttpSourceConfig, ctx: SourceContext) -> str:
        """The request a fetch sends: method, URL, parameters and body, secrets redacted.

        Args:
            config: The validated HTTP source config.
            ctx: As-of time and cycle bounds (for placeholders) and the KR reference.

        Returns:
            The request, then the JSONPath the value is read at.

        Raises:
            FatalSourceError: An unknown connection or secret.
        """
        call, redact, _ = self._call(config, ctx)
        return f"{describe_call(call, redact)}\nvalue_path: {config.value_path}"

    def _call(self, config: HttpSourceConfig, ctx: SourceContext) -> tuple[ApiCall, Redactor, str]:
        """The complete call, the redactor of its secrets, and the words naming it."""
        where = f"KR {ctx.kr_ref}: http source"
        connection = None
        if config.connection is not None:
            connection = self.env.connections.get(config.connection)
            if connection is None:
                raise FatalSourceError(
                    f"{where}: "
                    + unknown_name_message("connection", config.connection, self.env.connections)
                )
        missing = sorted(config.secret_names() - set(self.env.secrets))
        if missing:
            raise FatalSourceError(
                f"{where}: " + unknown_name_message("secret", missing[0], self.env.secrets)
            )
        secrets = {name: value.get_secret_value() for name, value in self.env.secrets.items()}
        # Every secret of the run is redacted, not only the ones this source uses: a
        # response may echo anything.
        known_secrets = list(secrets.values())
        headers: dict[str, str] = {}
        if connection is not None:
            base = connection.url.get_secret_value()
            known_secrets.append(urlsplit(base).password or "")
            for name, value in connection.headers.items():
                headers[name] = value.get_secret_value()
                known_secrets.append(headers[name])
            path = render(config.path, ctx, secrets, _quote)
            url = base.rstrip("/") + "/" + path.lstrip("/") if path else base
        else:
            url = render(config.url or "", ctx, secrets, _quote)
        for name, template in config.headers.items():
            headers[render(name, ctx, secrets)] = render(template, ctx, secrets)
        params = {k: _param(v, ctx, secrets) for k, v in config.params.items()}
        known_secrets += apply_auth(config.auth, secrets, headers, params)
        redact = Redactor(known_secrets)
        body = render_structure(config.json_body, ctx, secrets)
        timeout = config.timeout_seconds or (connection.timeout_seconds if connection else 30.0)
        shown = f"{config.method} {redact(_without_query(url))}"
        where = f"{where} {shown}"
        call = ApiCall(
            method=config.method,
            url=url,
            params=params,
            headers=headers,
            json_body=body,
            timeout=timeout,
            max_bytes=config.max_response_bytes,
            retries=config.retries,
            backoff_seconds=config.backoff_seconds,
        )
        return call, redact, where


def _quote(value: str) -> str:
    return quote(value, safe="")


def _param(value: ParamValue, ctx: SourceContext, secrets: dict[str, str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return render(value, ctx, secrets)
    return str(value)


def _without_query(url: str) -> str:
    # Query strings often carry keys; the path is enough to tell which call failed.
    return url.split("?", 1)[0]


def _extract(answer: Answer, value_path: str, where: str, redact: Redactor) -> Decimal | None:
    try:
        return extract_value(answer.content, value_path)
    except NotJson as exc:
        text = answer.content.decode(answer.encoding or "utf-8", errors="replace")
        raise FatalSourceError(
            f"{where}: the response is not JSON ({exc}): {truncate(redact(text), 200)!r}"
        ) from exc
    except AnswerError as exc:
        # Keys and values come from the answer, which may echo anything: redacted.
        raise FatalSourceError(f"{where}: {truncate(redact(str(exc)), 400)}") from exc
