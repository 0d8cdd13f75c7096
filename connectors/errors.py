"""Errors raised by metric sources, grouped by what the caller should do.

::

    OkrError                          (okr_core.errors)
     ├── ConfigError                  (okr_core.errors) the user must fix a file or setting
     │    └── SourceConfigError       a source declaration is wrong: unknown type,
     │                                unknown connection or secret, broken connector plugin
     └── SourceError                  a metric source failed while fetching
          ├── RetriableSourceError    timeouts, connection errors, 408, 425, 429, 5xx:
          │                           the same fetch may succeed later
          └── FatalSourceError        other 4xx, auth, bad query, bad result shape:
                                      retrying will not help, someone must fix something

Every message is redacted before it is raised (see ``connectors.redaction``) and the
original exception is chained with ``raise ... from exc``.
"""

from __future__ import annotations

from okr_pipeline.okr_core.errors import ConfigError, OkrError

__all__ = [
    "FatalSourceError",
    "RetriableSourceError",
    "SourceConfigError",
    "SourceError",
    "error_class_for_status",
    "short_message",
]

#: The longest line :func:`short_message` gives.
SHORT_LIMIT = 160


class SourceConfigError(ConfigError):
    """A source declaration cannot be used as written.

    Attributes:
        loc: Path of the offending field inside the source mapping (e.g. ``("type",)``),
            so the definition loader can point at the exact line; ``()`` when unknown.
    """

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


class SourceError(OkrError):
    """A metric source failed while fetching a value.

    The message (``str(exc)``) is the whole story: which KR, which request, and the
    driver's own words, redacted; it is stored with the measurement and shown by
    ``okr explain``. :attr:`short` is the one line a run prints beside the KR's name.

    Attributes:
        status: The HTTP status code when the failure came from an HTTP response.
    """

    def __init__(
        self, message: str, *, status: int | None = None, short: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self._short = short

    @property
    def short(self) -> str:
        """One short line saying what failed (no KR name, no driver dump, no secret).

        The raiser's own short text when it gave one, else :func:`short_message` of the
        message.
        """
        return self._short or short_message(str(self))


class RetriableSourceError(SourceError):
    """The fetch failed for a reason that may go away: timeout, connection, 429, 5xx."""


class FatalSourceError(SourceError):
    """The fetch failed for a reason retrying will not fix: bad query, auth, 4xx, shape."""


# Statuses outside 5xx that still mean "try again later": request timeout, too early,
# too many requests.
_RETRIABLE_4XX = frozenset({408, 425, 429})


def error_class_for_status(status: int) -> type[SourceError]:
    """Map an unsuccessful HTTP status code to the error class the caller should raise.

    This is the one place the product decides which statuses are worth retrying.

    Args:
        status: An HTTP status code that is not a success (not 2xx).

    Returns:
        ``RetriableSourceError`` for 408, 425, 429 and every 5xx; ``FatalSourceError``
        for everything else (other 4xx, and 1xx/3xx which a metric API should not send).
    """
    if status in _RETRIABLE_4XX or 500 <= status <= 599:
        return RetriableSourceError
    return FatalSourceError


def short_message(message: str, limit: int = SHORT_LIMIT) -> str:
    """One line of at most ``limit`` characters from a (possibly long) error message.

    Drops the ``"KR objective/kr: "`` start (the caller names the KR beside it), keeps the
    first line only and cuts it with an ellipsis: what a run prints for each failed KR.
    The message is assumed redacted already (every source error is).
    """
    text = message.strip()
    if text.startswith("KR ") and ": " in text:
        text = text.split(": ", 1)[1]
    lines = text.splitlines()
    line = " ".join(lines[0].split()) if lines else ""
    if len(line) > limit or len(lines) > 1:
        line = line[: limit - 1].rstrip() + "…"
    return line
