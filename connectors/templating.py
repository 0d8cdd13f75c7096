"""``${...}`` placeholders in HTTP source strings: secrets and evaluation times.

Supported: ``${secret:NAME}`` (a secret from the settings), ``${as_of}``, ``${cycle_start}``,
``${cycle_end}`` (ISO 8601 UTC, e.g. ``2024-04-01T00:00:00Z``), and the same with ``:date``
(``${as_of:date}`` -> ``2024-04-01``) for APIs that take calendar dates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.okr_core.names import PLACEHOLDER, secret_name_of
from okr_pipeline.okr_core.names import secret_refs as _text_secret_refs

__all__ = ["TIME_NAMES", "placeholder_errors", "render", "render_structure", "secret_refs"]

TIME_NAMES = ("as_of", "cycle_start", "cycle_end")
_TIME = re.compile(r"(as_of|cycle_start|cycle_end)(?::(date))?")


def placeholder_errors(text: str) -> list[str]:
    """Describe every malformed or unknown placeholder in ``text``.

    Args:
        text: A URL, parameter, header or body string from a source config.

    Returns:
        One message per bad placeholder; empty when all are valid.
    """
    errors = []
    for match in PLACEHOLDER.finditer(text):
        inner = match[1].strip()
        if secret_name_of(inner) is None and not _TIME.fullmatch(inner):
            errors.append(
                f"unknown placeholder {match[0]!r}. Valid: ${{secret:NAME}}, "
                + ", ".join(f"${{{n}}}" for n in TIME_NAMES)
                + " (optionally with ':date')"
            )
    return errors


def secret_refs(value: Any) -> set[str]:
    """Names of the secrets referenced by ``${secret:NAME}`` anywhere in ``value``.

    Args:
        value: A string, or a mapping/list of them (nested), e.g. a JSON body.

    Returns:
        The secret names.
    """
    return {name for text in _strings(value) for name in _text_secret_refs(text)}


def render(
    text: str,
    ctx: SourceContext,
    secrets: Mapping[str, str],
    encode: Callable[[str], str] = lambda s: s,
) -> str:
    """Replace every placeholder in ``text``.

    Args:
        text: The template; placeholders were validated with the config.
        ctx: The evaluation context (times).
        secrets: Secret values by name, already unwrapped.
        encode: Applied to each substituted value, e.g. URL quoting for URLs.

    Returns:
        The rendered text.

    Raises:
        KeyError: A referenced secret is missing (``check_references`` prevents this).
    """

    def _value(match: re.Match[str]) -> str:
        inner = match[1].strip()
        secret = secret_name_of(inner)
        if secret is not None:
            return encode(secrets[secret])
        time = _TIME.fullmatch(inner)
        if time is None:  # pragma: no cover - rejected when the config was validated
            raise ValueError(f"unknown placeholder {match[0]!r}")
        moment: datetime = getattr(ctx, time[1]).astimezone(UTC)
        if time[2] == "date":
            return encode(moment.date().isoformat())
        return encode(moment.isoformat().replace("+00:00", "Z"))

    return PLACEHOLDER.sub(_value, text)


def render_structure(value: Any, ctx: SourceContext, secrets: Mapping[str, str]) -> Any:
    """Render placeholders in every string of a nested JSON-like value (keys included).

    Args:
        value: A JSON body: dicts, lists, strings, numbers, booleans, None.
        ctx: The evaluation context.
        secrets: Secret values by name.

    Returns:
        A rendered copy.
    """
    if isinstance(value, str):
        return render(value, ctx, secrets)
    if isinstance(value, Mapping):
        return {
            render(str(k), ctx, secrets): render_structure(v, ctx, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [render_structure(v, ctx, secrets) for v in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []
