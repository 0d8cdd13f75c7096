"""Numbers and targets of the definition format: exact Decimals and relative targets.

Used as pydantic ``BeforeValidator`` functions by :mod:`okr_core.definitions`; each raises
``ValueError`` with a message written for the person editing the YAML file.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BeforeValidator

__all__ = ["is_zero_change", "parse_baseline", "parse_number", "parse_target", "resolve_target"]

# "+20%", "-15%", "+5", "-2.5": a sign is what makes a target relative.
_RELATIVE_RE = re.compile(r"^([+-])\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)$")


def _to_decimal(value: Any, what: str) -> Decimal:
    # bool is an int subclass; "true" as a baseline is a mistake, not 1.
    if isinstance(value, bool):
        raise ValueError(f"expected a number for {what}, got {str(value).lower()}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float):
        # str() gives the shortest repr, so YAML 0.1 becomes Decimal("0.1"), not 0.1000...55.
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace("_", ""))
        except InvalidOperation:
            raise ValueError(f"expected a number for {what}, got {value!r}") from None
    else:
        raise ValueError(f"expected a number for {what}, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return result


def parse_number(what: str) -> BeforeValidator:
    """A validator turning a YAML number (or numeric text) into an exact Decimal."""

    def parse(value: Any) -> Decimal | None:
        return None if value is None else _to_decimal(value, what)

    return BeforeValidator(parse)


def parse_baseline(value: Any) -> Decimal | str | None:
    """Parse a baseline: a number, ``"auto"`` or nothing."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _to_decimal(value, "baseline")
    except ValueError:
        raise ValueError(
            f"baseline must be a number or 'auto' (measured at cycle start), got {value!r}"
        ) from None


def parse_target(value: Any) -> Decimal | str | None:
    """Parse a target: a number, or a normalized relative string like ``"+20%"``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        match = _RELATIVE_RE.match(text)
        if match:
            sign, number, percent = match.groups()
            return f"{sign}{Decimal(number).normalize():f}{percent}"
        if text[:1] in "+-":
            raise ValueError(
                f"relative target {value!r} must look like '+20%', '-15%', '+5' or '-2.5'"
            )
    try:
        return _to_decimal(value, "target")
    except ValueError:
        raise ValueError(
            f"target must be a number or a relative change like '+20%' or '-5', got {value!r}"
        ) from None


def resolve_target(target: Decimal | str, baseline: Decimal) -> Decimal:
    """Turn a target into an absolute level, given the baseline.

    Args:
        target: An absolute ``Decimal``, or a relative string: ``"+20%"``/``"-15%"`` (percent
            of the baseline) or ``"+5"``/``"-2.5"`` (added to the baseline).
        baseline: The baseline value (declared, or measured at cycle start for ``auto``).

    Returns:
        The absolute target.

    Raises:
        ValueError: ``target`` is not a valid target.
    """
    if isinstance(target, Decimal):
        return target
    match = _RELATIVE_RE.match(target.strip())
    if not match:
        raise ValueError(f"not a relative target: {target!r}")
    sign, number, percent = match.groups()
    delta = Decimal(number)
    if percent:
        delta = abs(baseline) * delta / Decimal(100)
    return baseline + delta if sign == "+" else baseline - delta


def is_zero_change(relative: str) -> bool:
    """True for a relative target that changes nothing, like ``+0%``."""
    return Decimal(relative.lstrip("+-").rstrip("%")) == 0
