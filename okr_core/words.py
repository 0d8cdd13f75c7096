"""Words for people: counts (``1 point``, ``2 points``, no bracketed "s") and "did you mean".

Every "no such name" message (a KR on the command line, in a check-in, a formula or the
dashboard's URL; a cycle) takes its hint from :func:`suggest`, so a typo gets the same answer
everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural unless the count is one.

    Args:
        count: How many.
        word: The singular (``point``, ``as-of``).
        many: The plural where it is not ``word + "s"`` (``entries``).
    """
    return f"{count} {word if count == 1 else (many or word + 's')}"


#: How alike a name must be to be suggested (difflib's ratio, 0 to 1, compared case-blind):
#: a typo or two in an id, not another KR of the same objective (``growth/revenu`` is not
#: ``growth/signups``, 0.67). The one cutoff of every "did you mean".
CUTOFF = 0.75
#: At most this many close names are suggested.
SHOWN = 3
#: When no name is close, the known names are listed if there are at most this many.
LISTED = 8


def close_names(name: str, known: Iterable[str], *, shown: int = SHOWN) -> list[str]:
    """The known names most like ``name``, best first (none when nothing is close).

    A known name ``a/b`` also answers to its last part ``b`` (a KR's id alone), so a typo
    in a bare id finds the full ``objective/kr`` ref, which always answers.

    Args:
        name: The name that matched none.
        known: The valid names.
        shown: At most this many.
    """
    scores: dict[str, float] = {}
    wanted = name.strip().lower()
    for candidate in dict.fromkeys(known):
        forms = [candidate.lower()]
        if "/" in candidate and "/" not in wanted:
            forms.append(candidate.rpartition("/")[2].lower())
        score = max(difflib.SequenceMatcher(None, wanted, form).ratio() for form in forms)
        if score >= CUTOFF:
            scores[candidate] = score
    return sorted(scores, key=lambda candidate: -scores[candidate])[:shown]


def suggest(name: str, known: Iterable[str]) -> str:
    """The hint after "no such name": the close names, or the few known ones, or ``""``.

    `` Did you mean 'x'?``, `` Did you mean 'x' or 'y'?`` (see :data:`CUTOFF`,
    :data:`SHOWN`); with nothing close and at most :data:`LISTED` names,
    `` Known: 'a', 'b'.``; otherwise ``""`` (the caller says where the names are listed).
    It starts with a space, so callers append it to their own sentence.

    Args:
        name: The name that matched none.
        known: The valid names (``objective/kr`` refs for KRs: a bare id finds its ref).
    """
    names = list(dict.fromkeys(known))
    close = close_names(name, names)
    if close:
        quoted = [f"'{found}'" for found in close]
        either = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        return f" Did you mean {either}?"
    if 0 < len(names) <= LISTED:
        return f" Known: {', '.join(repr(known_name) for known_name in sorted(names))}."
    return ""
