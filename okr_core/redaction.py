"""Remove secrets from text before it is logged, raised or stored: the one redactor.

Every message a connector builds passes through a ``Redactor``: it knows the secret values
in play for one fetch and also masks the shapes secrets take even when their value is not
known (credentials in URLs, auth headers, token-like query parameters). ``mask_url`` is the
same shape masking for a URL on its own (store URLs, API URLs), so every output path masks
the same things.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "SENSITIVE_HEADERS",
    "SENSITIVE_QUERY_KEYS",
    "Redactor",
    "is_sensitive_header",
    "is_sensitive_key",
    "mask_url",
    "redact_text",
    "redact_value",
    "truncate",
]

MASK = "***"

SENSITIVE_QUERY_KEYS = frozenset(
    {
        "token",
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "secret",
        "sig",
        "signature",
        "auth",
    }
)
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
# Header names that are not in the list above but still obviously carry credentials,
# e.g. "X-Auth-Token", "X-Goog-Api-Key", "Private-Token".
_SENSITIVE_HEADER_PARTS = ("token", "secret", "key", "auth", "password", "cookie")

# Query keys that are secrets by their ending, e.g. "session_token", "X-Amz-Signature",
# "db_password", "aws_secret_access_key" ("monkey" is not: a bare "key" must be the whole name).
# Name lengths are bounded so that a long body of "a.b.c..." stays linear to scan.
_SENSITIVE_KEY_SUFFIX = r"(?:token|secret|passw(?:or)?d|signature|api[_-]?key|[_-]key)"
_SENSITIVE_KEY = (
    r"(?:[A-Za-z0-9_.-]{0,64}"
    + _SENSITIVE_KEY_SUFFIX
    + "|"
    + "|".join(re.escape(k) for k in sorted(SENSITIVE_QUERY_KEYS, key=len, reverse=True))
    + ")"
)

# scheme://user:password@host... The password runs to the last "@" before any query or
# whitespace, so a password with an unescaped "@" or "/" is still masked whole. The price is
# over-masking the rare "host:port/path@x" text, which is the safe way to be wrong. An empty
# password ("bob:@host") holds nothing and is left as it is. ``_mask_userinfo`` finds that
# "@" without a backtracking regex, so a long body full of URLs stays linear to scan.
_URL_USER = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^:/?#@\s]*:")
_URL_END = re.compile(r"[?#\s]")
# key=value wherever it stands (query strings, form bodies, DSNs such as "password=x").
# The whole name is read first and judged by ``is_sensitive_key`` (a name starts only where
# no name character precedes it, which keeps the scan linear on any text). The value runs to
# the next "&", "#", whitespace, quote or angle bracket.
_QUERY_PARAM = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]{1,128})=(?P<value>[^&#\s'\"<>]+)"
)
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=-]+", re.I)
_HEADER_LINE = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<name>['\"]?(?:authorization|proxy-authorization|x-api-key|api-key|set-cookie|cookie"
    r"|[A-Za-z0-9_-]{0,64}(?:-token|_token|-secret|_secret))['\"]?"
    r"\s*[:=]\s*)(?P<value>['\"][^'\"]*['\"]|(?:(?:Bearer|Basic|Token|Digest)\s+)?[^\s,}&]+)",
    re.IGNORECASE,
)
_SENSITIVE_KEY_RE = re.compile(_SENSITIVE_KEY, re.IGNORECASE)


def truncate(text: str, limit: int = 300) -> str:
    """Shorten ``text`` to at most ``limit`` characters, saying how much was cut.

    Args:
        text: Any text, typically a response body or a database message.
        limit: Maximum number of characters kept.

    Returns:
        The text itself when short enough, else its start and ``"... (N more chars)"``.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more chars)"


def is_sensitive_header(name: str) -> bool:
    """Tell whether a header's value should never be shown.

    Args:
        name: Header name, any case.

    Returns:
        True for auth headers, cookies and anything named like a token, key or secret.
    """
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or any(part in lowered for part in _SENSITIVE_HEADER_PARTS)


def is_sensitive_key(name: str) -> bool:
    """Tell whether a query parameter (or config key) of this name holds a secret.

    Args:
        name: Parameter name, any case.

    Returns:
        True for the names in ``SENSITIVE_QUERY_KEYS`` and names ending like a token,
        secret, password, signature or key (``session_token``, ``X-Amz-Signature``).
    """
    # "config.token" and "x.api_key" are judged by their last part as well.
    return any(_SENSITIVE_KEY_RE.fullmatch(part) for part in (name, name.rsplit(".", 1)[-1]))


def redact_text(text: str) -> str:
    """Mask credentials that are recognisable by shape, without knowing their values.

    Args:
        text: Any text.

    Returns:
        The text with URL passwords, auth header values and token-like query parameter
        values replaced by ``***``.
    """
    text = _mask_userinfo(text)
    text = _QUERY_PARAM.sub(
        lambda m: f"{m['key']}={MASK}" if is_sensitive_key(m["key"]) else m[0], text
    )
    text = _HEADER_LINE.sub(lambda m: f"{m['name']}{MASK}", text)
    return _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)


def _mask_userinfo(text: str) -> str:
    pieces: list[str] = []
    kept = 0  # text[:kept] is already in pieces
    search_from = 0
    region_end = last_at = -1  # the current run up to "?", "#" or whitespace, and its last "@"
    while (match := _URL_USER.search(text, search_from)) is not None:
        start = match.end()
        if start > region_end:
            end = _URL_END.search(text, start)
            region_end = end.start() if end is not None else len(text)
            last_at = text.rfind("@", start, region_end)
        if last_at < start:
            # No "@" up to the end of this run: no later URL in it has a password either.
            search_from = max(region_end, start)
            continue
        if last_at > start:
            pieces.append(text[kept:start] + MASK)
            kept = last_at
        search_from = last_at + 1
    pieces.append(text[kept:])
    return "".join(pieces)


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a config value for display (``repr``), recursing into mappings and lists.

    Args:
        value: A field value of a source config.
        key: The mapping key or header/parameter name the value sits under, if any.

    Returns:
        A copy safe to show: values under sensitive keys become ``***``, strings are passed
        through ``redact_text``. Secret placeholders such as ``${secret:NAME}`` are kept
        because they name a secret without revealing it.
    """
    if key is not None and (is_sensitive_header(key) or is_sensitive_key(key)):
        if isinstance(value, str) and _only_placeholders(value):
            return value
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def mask_url(url: str) -> str:
    """Mask the password and credential query parameters in a URL.

    Works on any URL, SQLAlchemy URLs included, without importing SQLAlchemy; it is
    ``redact_text``, so a URL is masked exactly as it would be inside any message.

    Args:
        url: The URL, e.g. ``postgresql+psycopg://bob:secret@host/db``.

    Returns:
        The URL with secrets replaced by ``***``, e.g. ``postgresql+psycopg://bob:***@host/db``.
    """
    return redact_text(url)


_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def _only_placeholders(value: str) -> bool:
    # "Bearer ${secret:tok}" holds no literal credential; "Bearer abc123" does.
    rest = _PLACEHOLDER.sub("", value).strip()
    return rest == "" or rest.lower() in {"bearer", "basic", "token"}


class Redactor:
    """Removes known secret values (and credential-shaped text) from messages.

    A Redactor is built per fetch from the secrets that fetch uses, so it can also remove
    the encoded forms a secret takes on the wire (URL-quoted, base64 in Basic auth).

    Args:
        secrets: Plain secret values to remove wherever they appear.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            values.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
        # Longest first so that a secret containing another is removed whole.
        self._values = sorted(values, key=len, reverse=True)

    def with_basic(self, username: str, password: str) -> Redactor:
        """Return a Redactor that also removes the base64 Basic-auth token of a pair.

        Args:
            username: Basic-auth user name.
            password: Basic-auth password (a secret).

        Returns:
            A new Redactor.
        """
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return Redactor([*self._values, password, token])

    def __call__(self, text: str) -> str:
        """Redact ``text``.

        Args:
            text: Any text.

        Returns:
            The text with every known secret value and credential shape replaced by ``***``.
        """
        for value in self._values:
            text = text.replace(value, MASK)
        return redact_text(text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"
