"""``csv``: a number from a CSV file: a local file, or one fetched over HTTP(S).

A KR reads one cell (``column`` in the row that ``where`` matches) or an aggregate of a
column over the matching rows (``sum``, ``avg``, ``min``, ``max``, ``count``, ``last``).
With ``as_of_column`` only rows dated on or before the as-of count, and without an
aggregate the latest of them is taken, so a sheet that gains a row a week can be backfilled.

A relative ``path`` is resolved against the current directory: ``okr`` runs in the project
folder, so it is relative to the project (sources are not told the project folder). A
``url`` (a published Google Sheet's ``...pub?output=csv``, or any CSV) is fetched with the
guarantees of every HTTP call (``connectors.api_client``): one deadline per attempt, a size
cap, retries, redaction. Redirects (a published sheet has one) are followed, at most
three and never from https to http: no credential header is sent. A URL that is
itself a credential goes in a secret (``url_secret``), or its key in ``${secret:NAME}``;
``${as_of:date}`` and the other times may be used in the URL too.

Numbers are exact (``Decimal``). ``1,234`` needs ``thousands_separator: ","`` and ``12%``
needs ``percent`` (``number``: 12; ``fraction``: 0.12); otherwise they are refused with
that hint. An empty cell is no data, never 0; a missing column is an error naming the
columns the file has.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

from pydantic import Field, field_validator, model_validator

from okr_pipeline.connectors.api_client import (
    MAX_RESPONSE_BYTES_LIMIT,
    ApiCall,
    ClientSource,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import (
    BaseSourceConfig,
    SourceContext,
)
from okr_pipeline.connectors.csv_table import (
    CsvError,
    check_columns,
    parse_rows,
    read_capped,
    select_value,
)
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.http_deadline import Answer
from okr_pipeline.connectors.templating import placeholder_errors, render, secret_refs
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, truncate

__all__ = ["CsvSource", "CsvSourceConfig"]

#: Redirects followed (a published Google Sheet answers with one).
MAX_REDIRECTS = 3
_TIME_PLACEHOLDER = re.compile(r"\$\{\s*(as_of|cycle_start|cycle_end)")
Aggregate = Literal["sum", "avg", "min", "max", "count", "last"]


class CsvSourceConfig(BaseSourceConfig):
    """A number from a CSV file: one cell, or an aggregate of a column."""

    type: Literal["csv"] = Field(
        description="CSV: a cell or a column aggregate of a local file or a URL."
    )
    path: str | None = Field(
        None,
        min_length=1,
        description="Local file; a relative path is taken from the folder okr runs in (the "
        "project folder).",
    )
    url: str | None = Field(
        None,
        min_length=1,
        description="http(s) URL of the CSV (e.g. a published Google Sheet, ...?output=csv); "
        "${secret:NAME} may hold a key.",
    )
    url_secret: SecretName | None = Field(
        None, description="Secret holding the whole URL, when the URL itself is a credential."
    )
    column: str = Field(min_length=1, description="Header of the column the number is in.")
    where: dict[str, str] = Field(
        default_factory=dict,
        description="Rows to use: header -> exact cell text (after trimming spaces); all "
        "must match.",
    )
    aggregate: Aggregate | None = Field(
        None,
        description="sum, avg, min, max, count (non-empty cells) or last over the matching "
        "rows; without it exactly one row must match.",
    )
    as_of_column: str | None = Field(
        None,
        min_length=1,
        description="Header of a date column (YYYY-MM-DD or ISO 8601): only rows dated on or "
        "before the as-of are used, and without an aggregate the latest one is taken.",
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator.")
    encoding: str = Field(
        "utf-8-sig", min_length=1, description="Text encoding (default UTF-8, BOM allowed)."
    )
    decimal_separator: Literal[".", ","] = Field(
        ".", description="Decimal separator of the numbers."
    )
    thousands_separator: Literal[",", ".", " ", "'", "_"] | None = Field(
        None,
        description="Thousands separator to remove (a space also matches non-breaking "
        "spaces); without it 1,234 is refused.",
    )
    percent: Literal["refuse", "number", "fraction"] = Field(
        "refuse",
        description="A trailing %: refuse (default), number (12% -> 12) or fraction (12% -> 0.12).",
    )
    timeout_seconds: float = Field(
        30, gt=0, le=600, description="Time allowed for one download attempt (URL only)."
    )
    retries: int = Field(
        3, ge=0, le=10, description="Retries after a transient failure (URL only)."
    )
    backoff_seconds: float = Field(
        0.5, ge=0, le=60, description="First retry wait, doubling per retry (URL only)."
    )
    max_response_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        le=MAX_RESPONSE_BYTES_LIMIT,
        description="Largest file accepted, in bytes (default 10 MiB).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        errors = placeholder_errors(url)
        if errors:
            raise ValueError("; ".join(errors))
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValueError(f"url must be an http(s) URL, got {url[:40]!r}")
        return url

    @model_validator(mode="after")
    def _check(self) -> CsvSourceConfig:
        given = [n for n in ("path", "url", "url_secret") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of path, url or url_secret")
        if self.thousands_separator is not None and (
            self.thousands_separator == self.decimal_separator
        ):
            raise ValueError("thousands_separator and decimal_separator must differ")
        if self.delimiter in ('"', "\n", "\r"):
            raise ValueError(f"delimiter {self.delimiter!r} cannot separate fields")
        return self

    def secret_names(self) -> set[str]:
        """The URL's secret, and those its ``${secret:NAME}`` placeholders name.

        Returns:
            The secret names.
        """
        names = secret_refs(self.url) if self.url else set()
        return names | ({self.url_secret} if self.url_secret else set())

    def uses_as_of(self) -> bool:
        """True with ``as_of_column``, or a URL with ``${as_of}``-style placeholders.

        Returns:
            Whether the number depends on the as-of.
        """
        in_url = self.url is not None and _TIME_PLACEHOLDER.search(self.url) is not None
        return self.as_of_column is not None or in_url

    def concurrency_key(self) -> str:
        """Downloads from one host share a bound; local files share ``csv``.

        Returns:
            ``"csv:<host>"`` or ``"csv"``.
        """
        return f"csv:{urlsplit(self.url).hostname}" if self.url else "csv"


class CsvSource(ClientSource[CsvSourceConfig]):
    """Reads a number from a CSV file or URL: a cell by column and row match, or an aggregate.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between download retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter.
    """

    type_name = "csv"
    config_model = CsvSourceConfig
    reads = "a cell, or an aggregate of a column, of a CSV file or URL"
    authentication = "none; a key in the URL from a secret"
    tested_against = "real files and a local HTTP server"

    def fetch(self, config: CsvSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Read the file, choose the rows, return the cell or the aggregate.

        Raises:
            RetriableSourceError: The download failed in a way a later try may not.
            FatalSourceError: Unreadable file, unknown secret, a missing column (the columns
                there are named), several rows without an aggregate, a cell that is not a
                number, a date that is not a date.
        """
        where = f"KR {ctx.kr_ref}: csv source"
        text, where, redact = self._text(config, ctx, where)
        try:
            rows, headers = parse_rows(text, config.delimiter)
            check_columns(config, headers)
            return select_value(config, ctx, rows)
        except CsvError as exc:
            raise FatalSourceError(f"{where}: {truncate(redact(str(exc)), 400)}") from exc

    def _text(
        self, config: CsvSourceConfig, ctx: SourceContext, where: str
    ) -> tuple[str, str, Redactor]:
        """The file's text, the ``where`` of messages, and the redactor of its secrets."""
        if config.path is not None:
            path = Path(config.path).expanduser()
            where = f"{where} {config.path}"
            try:
                data = read_capped(path, config.max_response_bytes)
            except OSError as exc:
                raise FatalSourceError(f"{where}: cannot read {path}: {exc.strerror}") from exc
            return self._decode(data, config, where), where, Redactor([])
        names = sorted(config.secret_names())
        missing = [n for n in names if n not in self.env.secrets]
        if missing:
            raise FatalSourceError(
                f"{where}: " + unknown_name_message("secret", missing[0], self.env.secrets)
            )
        secrets = {n: self.env.secrets[n].get_secret_value() for n in names}
        redact = Redactor(list(secrets.values()))
        if config.url_secret is not None:
            url = secrets[config.url_secret]
        else:
            assert config.url is not None
            url = render(config.url, ctx, secrets, encode=lambda v: quote(v, safe=""))
        where = f"{where} GET {redact(url.split('?', 1)[0])}"
        # A published Google Sheet answers with a redirect to its content host. Other HTTP
        # sources refuse redirects because they could carry credential headers elsewhere;
        # this request sends none, and a key in the URL is not carried to the new one.
        for _ in range(MAX_REDIRECTS + 1):
            location: list[str] = []
            call = ApiCall(
                method="GET",
                url=url,
                headers={"Accept": "text/csv, text/plain;q=0.9, */*;q=0.1"},
                timeout=config.timeout_seconds,
                max_bytes=config.max_response_bytes,
                retries=config.retries,
                backoff_seconds=config.backoff_seconds,
                retry_answer=partial(_note_redirect, location),
            )
            try:
                answer = self._client.send(call, where=where, redact=redact)
            except FatalSourceError:
                if not location:
                    raise
                url = _next_url(url, location[0], where)
                continue
            return self._decode(answer.content, config, where), where, redact
        raise FatalSourceError(f"{where}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _decode(data: bytes, config: CsvSourceConfig, where: str) -> str:
        try:
            return data.decode(config.encoding)
        except LookupError as exc:
            raise FatalSourceError(f"{where}: unknown encoding {config.encoding!r}") from exc
        except UnicodeDecodeError as exc:
            raise FatalSourceError(
                f"{where}: not {config.encoding} text at byte {exc.start}; set encoding"
            ) from exc


def _note_redirect(location: list[str], answer: Answer) -> float | None:
    """Keep a redirect's target; the answer stays classified as usual (None)."""
    if 300 <= answer.status < 400 and answer.headers.get("Location"):
        location.append(answer.headers["Location"])
    return None


def _next_url(url: str, location: str, where: str) -> str:
    target = urljoin(url, location)
    if urlsplit(target).scheme not in ("http", "https") or (
        urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https"
    ):
        raise FatalSourceError(f"{where}: redirected to {target[:80]!r}, not followed")
    return target
