"""Counts in words: ``1 point``, ``2 points``, never ``1 points`` or ``point(s)``."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural unless the count is one.

    Args:
        count: How many.
        word: The singular (``point``, ``as-of``).
        many: The plural where it is not ``word + "s"`` (``entries``).
    """
    return f"{count} {word if count == 1 else (many or word + 's')}"
