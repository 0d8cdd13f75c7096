"""Turn what a source returned into an exact ``Decimal``, ``None`` (no data) or an error.

Shared by every connector so that "42.5", 42.5, Decimal("42.5") and True mean the same
thing whether they came from a database driver or a JSON API.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["NotANumberError", "describe", "to_decimal"]

# Deliberately stricter than Decimal(): no "1_000", no "Infinity", no surrounding text.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAN = frozenset({"nan", "+nan", "-nan"})
_INF = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


class NotANumberError(ValueError):
    """The value is present but is not a finite number; the message says what it is."""


def describe(value: object, limit: int = 60) -> str:
    """Describe a received value briefly for an error message.

    Args:
        value: Anything a driver or JSON parser produced.
        limit: Maximum length of the shown representation.

    Returns:
        ``'abc'`` for strings, ``an object``/``a list`` for containers, else the repr.
    """
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_decimal(value: object) -> Decimal | None:
    """Convert a received value to an exact Decimal.

    Args:
        value: ``None``, a bool, an int, a Decimal, a float, a numeric string (also bytes),
            as returned by DB drivers and JSON parsers.

    Returns:
        The exact value; ``None`` for ``None`` and NaN (no data: a missing number is
        never shown as 0). Booleans give 1 and 0, for milestone KRs.

    Raises:
        NotANumberError: The value is not a number (or is infinite).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return _finite(value, value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        # str() gives the shortest repr that round-trips: 0.1 -> Decimal("0.1"), not the
        # 55-digit binary expansion Decimal(0.1) would produce.
        return _finite(Decimal(str(value)), value)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise NotANumberError(f"is {describe(value)}, not a number") from None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NAN:
            return None
        if text.lower() in _INF:
            raise NotANumberError(f"is {describe(value)}, not a finite number")
        if not _NUMBER.fullmatch(text):
            raise NotANumberError(f"is {describe(value)}, not a number")
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid input
            raise NotANumberError(f"is {describe(value)}, not a number") from None
    raise NotANumberError(f"is {describe(value)}, not a number")


def _finite(number: Decimal, original: object) -> Decimal | None:
    if number.is_nan():
        return None
    if number.is_infinite():
        raise NotANumberError(f"is {describe(original)}, not a finite number")
    return number
