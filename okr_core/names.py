"""Names that sources and alert channels refer to: the ``${secret:NAME}`` grammar, one message.

The message is for a connection or secret that the settings do not define.

HTTP sources (``connectors.templating``) and alert channel URLs
(:mod:`okr_core.alerting.routing`) read secret references with the same grammar, so a name
valid in one is valid in the other.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "PLACEHOLDER",
    "SECRET_NAME_RULE",
    "secret_name_of",
    "secret_refs",
    "unknown_name_message",
]

#: Any ``${...}`` placeholder; group 1 is the text between the braces.
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
#: How a secret name is made, for error messages.
SECRET_NAME_RULE = "a letter or '_', then letters, digits, '_', '.' or '-'"

# '.' and '-' are allowed because okr.toml can hold such names ([secrets] "api.key" = ...).
_SECRET = re.compile(r"secret:([A-Za-z_][A-Za-z0-9_.-]*)")
# Environment variables give lower-case names made of these characters only
# (pydantic-settings lower-cases them), so only such names can be defined there.
_ENV_NAME = re.compile(r"[a-z0-9_]+")
_TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def secret_name_of(inner: str) -> str | None:
    """The ``NAME`` when a placeholder's inner text is ``secret:NAME``, else None.

    Args:
        inner: The text between ``${`` and ``}`` (surrounding spaces are ignored).

    Returns:
        The secret name, or None when it is not a valid secret reference.
    """
    match = _SECRET.fullmatch(inner.strip())
    return match[1] if match else None


def secret_refs(text: str) -> set[str]:
    """Names of the secrets referenced by ``${secret:NAME}`` in ``text``.

    Args:
        text: A URL, header, parameter or body string.

    Returns:
        The secret names; placeholders that are not valid secret references are ignored.
    """
    names = (secret_name_of(match[1]) for match in PLACEHOLDER.finditer(text))
    return {name for name in names if name is not None}


def unknown_name_message(
    kind: Literal["connection", "secret"], name: str, known: Iterable[str]
) -> str:
    """The one message for a connection or secret the settings do not define.

    Callers prefix their own context (e.g. ``"KR o/k: sql source: "``).

    Args:
        kind: What was looked up.
        name: The name that was asked for.
        known: The names the settings define.

    Returns:
        One line: the unknown name, the known ones (or "none"), a close match if any, and
        how to define it (environment, ``.env`` or ``okr.toml``; ``okr.toml`` only for
        names an environment variable cannot give).
    """
    names = sorted(set(known))
    text = f"unknown {kind} {name!r}. Known {kind}s: {', '.join(names) or 'none'}."
    # Case-blind, as a name from the environment comes lower-cased.
    lowered = {known_name.lower(): known_name for known_name in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
    if close:
        text += f" Did you mean {lowered[close[0]]!r}?"
    key = name if _TOML_BARE_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'
    toml = f"[connections.{key}] url = ..." if kind == "connection" else f"[secrets] {key} = ..."
    if _ENV_NAME.fullmatch(name):
        env = (
            f"OKR_CONNECTIONS__{name.upper()}__URL=..."
            if kind == "connection"
            else f"OKR_SECRETS__{name.upper()}=..."
        )
        return f"{text} Define it with {env} in the environment or .env, or {toml} in okr.toml."
    bad = sorted({repr(char) for char in name if not re.fullmatch(r"[A-Za-z0-9_]", char)})
    why = (
        f"a name with {' or '.join(bad)} cannot be an environment variable"
        if bad
        else "environment variables give lower-case names"
    )
    return f"{text} Define it with {toml} in okr.toml ({why})."
