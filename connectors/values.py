"""Turn what a source returned into an exact ``Decimal``, ``None`` (no data) or an error.

Shared by every connector so that "42.5", 42.5, Decimal("42.5") and True mean the same
thing whether they came from a database driver or a JSON API.

Range: every value this product keeps satisfies ``abs(value) < MAX_ABS_VALUE`` (10**28) and
is kept to at most ``SIGNIFICANT_DIGITS`` (28) significant digits and ``DECIMAL_PLACES`` (28)
places after the point. Why this bound: it is what Python's default decimal context
computes exactly (precision 28), so scoring's Decimal arithmetic and its float conversion
(floats reach 1.8e308) cannot overflow; and its plain text (sign, 28 digits, point, 28
digits: 58 characters) fits both stores: ``NUMERIC`` without precision on PostgreSQL
(131072 digits before the point, 16383 after) and ``ExactDecimal``'s 80-character text on
SQLite (``okr_store.types``). A larger value is refused with a message; finer digits are
rounded half-even. The flow applies the same check to third-party connectors' values.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

__all__ = [
    "DECIMAL_PLACES",
    "MAX_ABS_VALUE",
    "SIGNIFICANT_DIGITS",
    "NotANumberError",
    "OutOfRangeError",
    "describe",
    "to_decimal",
]

#: Exclusive bound on a value's magnitude: every kept value has ``abs(value) < 10**28``.
MAX_ABS_VALUE = Decimal(10) ** 28
#: Significant digits kept (Python's default decimal precision); more are rounded off.
SIGNIFICANT_DIGITS = 28
#: Digits kept after the point; finer digits are rounded off (1e-30 is kept as 0).
DECIMAL_PLACES = 28
_MAX_ADJUSTED = 27  # Decimal.adjusted() of the largest kept magnitude, 9.99...e27
_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)
# No traps and a huge exponent range: rounding an in-range value never raises, whatever
# exponent the input had.
_ROUNDING = Context(
    prec=SIGNIFICANT_DIGITS, rounding=ROUND_HALF_EVEN, Emax=10**9, Emin=-(10**9), traps=[]
)

# Deliberately stricter than Decimal(): no "1_000", no "Infinity", no surrounding text.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAN = frozenset({"nan", "+nan", "-nan"})
_INF = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


class NotANumberError(ValueError):
    """The value is present but is not a finite number; the message says what it is."""


class OutOfRangeError(NotANumberError):
    """The value is a number, but too large for this product to store and score."""


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
        OutOfRangeError: The number's magnitude is ``MAX_ABS_VALUE`` or more.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return _finite(Decimal(value), value)
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
            return _finite(Decimal(text), value)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid input
            raise NotANumberError(f"is {describe(value)}, not a number") from None
    raise NotANumberError(f"is {describe(value)}, not a number")


def _finite(number: Decimal, original: object) -> Decimal | None:
    if number.is_nan():
        return None
    if number.is_infinite():
        raise NotANumberError(f"is {describe(original)}, not a finite number")
    if number.is_zero():
        return Decimal(0)  # drops a sign and an exponent such as 0E+999999 that mean nothing
    # adjusted() is exact for any exponent, where abs() or a comparison under the default
    # context would raise decimal.Overflow for 1e999999999. Checked before rounding (the
    # rounding context has a finite exponent range) and after (9.99...9e27 rounds to 1e28).
    if number.adjusted() > _MAX_ADJUSTED:
        raise _out_of_range(number)
    rounded = _ROUNDING.plus(number)
    if rounded.adjusted() > _MAX_ADJUSTED:
        raise _out_of_range(number)
    if rounded.as_tuple().exponent < -DECIMAL_PLACES:  # type: ignore[operator]
        rounded = rounded.quantize(_QUANTUM, context=_ROUNDING)
        if rounded.is_zero():
            return Decimal(0)
    return rounded


def _out_of_range(number: Decimal) -> OutOfRangeError:
    return OutOfRangeError(
        f"is {number:.6g}, out of the range this product stores (|value| < 1e28); "
        "check the source's unit, or scale the value down in the query or API call"
    )
