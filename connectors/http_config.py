"""Configuration of the HTTP metric source: what to call and how to read the answer.

``connectors.http`` does the calling; this module only declares and validates (the URL is
absolute, placeholders are known, the JSONPath compiles), so ``okr schema`` and the
definition loader need nothing of the request machinery.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from okr_pipeline.connectors.auth import AuthConfig
from okr_pipeline.connectors.base import BaseSourceConfig
from okr_pipeline.connectors.http_extract import compile_jsonpath
from okr_pipeline.connectors.templating import placeholder_errors, secret_refs

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_BYTES_LIMIT",
    "HttpSourceConfig",
    "ParamValue",
]

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_RESPONSE_BYTES_LIMIT = 256 * 1024 * 1024

ParamValue = str | int | float | bool


class HttpSourceConfig(BaseSourceConfig):
    """A JSON HTTP API call returning the KR's current value."""

    type: Literal["http"] = Field(description="Source type: a JSON HTTP API.")
    url: str | None = Field(
        None, description="Absolute http(s) URL. Either url, or connection (+ path)."
    )
    connection: str | None = Field(
        None,
        min_length=1,
        description="Connection in the settings whose url is the base URL and whose "
        "headers are sent with the request.",
    )
    path: str = Field("", description="Path appended to the connection's base URL.")
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    json_body: Any = Field(None, alias="json", description="JSON request body (POST).")
    value_path: str = Field(
        min_length=1, description="JSONPath of the value in the response, e.g. $.data.total."
    )
    auth: AuthConfig | None = Field(None, description="Authentication scheme.")
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Time allowed for one attempt as a whole: connect, headers and the "
        "entire body (default: the connection's timeout, or 30). The whole fetch takes at "
        "most (retries + 1) times this, plus the waits between attempts.",
    )
    max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        le=MAX_RESPONSE_BYTES_LIMIT,
        description="Largest response body accepted, in bytes (default 10485760 = 10 MiB, "
        "at most 268435456 = 256 MiB); a larger answer is the KR's error.",
    )
    retries: int = Field(3, ge=0, le=10, description="Retries after a transient failure.")
    backoff_seconds: float = Field(
        0.5,
        ge=0,
        le=60,
        description="First retry delay; doubles per retry, at most 30s; each wait is drawn "
        "between half of that and all of it (jitter), or is the server's Retry-After.",
    )

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(
                    "must be an absolute http(s) URL such as https://api.example.com/v1/x; "
                    "for a path on a connection use 'connection' and 'path'"
                )
            try:
                parts.port  # noqa: B018 - urlsplit checks the port only when asked
            except ValueError:
                raise ValueError(
                    "has a host part that is not host[:port]; in a user name or password, "
                    "write '/', '@', ':' and '?' percent-encoded (%2F, %40, %3A, %3F)"
                ) from None
        return url

    @field_validator("value_path")
    @classmethod
    def _valid_jsonpath(cls, path: str) -> str:
        compile_jsonpath(path)  # raises ValueError with the parser's message
        return path

    @model_validator(mode="after")
    def _consistent(self) -> HttpSourceConfig:
        if (self.url is None) == (self.connection is None):
            raise ValueError("set exactly one of 'url' or 'connection' (with 'path')")
        if self.url is not None and self.path:
            raise ValueError("'path' goes with 'connection'; put it in 'url' instead")
        if self.method == "GET" and self.json_body is not None:
            raise ValueError("a 'json' body needs method: POST")
        problems = [p for text in self._templates() for p in placeholder_errors(text)]
        if problems:
            raise ValueError("; ".join(sorted(set(problems))))
        return self

    def _templates(self) -> list[str]:
        texts = [self.url or "", self.path, *self.headers.keys(), *self.headers.values()]
        texts += [v for v in self.params.values() if isinstance(v, str)]
        texts += sorted(_strings_in(self.json_body))
        return texts

    def uses_as_of(self) -> bool:
        """True when a template of the request names ``${as_of...}``.

        Returns:
            Whether the request depends on the as-of.
        """
        return any("${as_of" in text for text in self._templates())

    def connection_names(self) -> set[str]:
        """The connection used as base URL, if any.

        Returns:
            ``{connection}`` or an empty set.
        """
        return {self.connection} if self.connection else set()

    def secret_names(self) -> set[str]:
        """Secrets named by ``auth`` and by ``${secret:NAME}`` placeholders.

        Returns:
            The secret names.
        """
        names = secret_refs([self.url or "", self.path, self.headers, self.params, self.json_body])
        if self.auth is not None:
            names |= self.auth.secret_names()
        return names

    def concurrency_key(self) -> str:
        """Requests to one connection, or else one host, share a bound.

        Returns:
            ``"http:<connection>"`` or ``"http:<host[:port]>"``.
        """
        if self.connection:
            return f"http:{self.connection}"
        parts = urlsplit(self.url or "")
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:  # refused by validation; a stored config may predate that
            port = None
        return f"http:{host}:{port}" if port else f"http:{host}"


def _strings_in(value: Any) -> set[str]:
    # Every string inside a nested JSON-like body, keys included, for validation.
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in ({str(k)} | _strings_in(v))}
    if isinstance(value, list):
        return {s for v in value for s in _strings_in(v)}
    return set()
