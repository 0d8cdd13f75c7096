"""Counts in words and the one "did you mean" of every unknown name."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import pytest

from okr_pipeline.okr_core.words import CUTOFF, LISTED, close_names, plural, suggest

ROOT = Path(__file__).resolve().parents[2]
CODE = ["cli", "run", "notify", "flows", "demo", "web", "okr_core", "connectors", "okr_store"]


def test_plural_counts() -> None:
    assert plural(1, "problem") == "1 problem"
    assert plural(0, "problem") == "0 problems"
    assert plural(2, "entry", "entries") == "2 entries"


def test_no_message_says_word_s() -> None:
    """'problem(s)' reads badly: every count goes through plural (an 'http(s) URL' is fine)."""
    found = []
    for folder in CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            for token in tokens:
                if token.type == tokenize.STRING and "(s)" in token.string.replace("http(s)", ""):
                    found.append(f"{path.relative_to(ROOT)}:{token.start[0]}")
    assert found == []


REFS = ["growth/signups", "retention/signups", "growth/revenue"]


@pytest.mark.parametrize(
    ("name", "known", "hint"),
    [
        ("growth/revenu", REFS, " Did you mean 'growth/revenue'?"),
        # A bare id finds the full ref of each KR it may mean.
        ("signup", REFS, " Did you mean 'growth/signups' or 'retention/signups'?"),
        # Case-blind, as people type.
        ("Growth/Revenue", REFS, " Did you mean 'growth/revenue'?"),
        # Another KR of the same objective is not a typo (ratio 0.67 < CUTOFF).
        ("growth/revenu", ["growth/signups", *(f"o/k{n}" for n in range(LISTED))], ""),
        # Nothing close and few names: they are listed, sorted.
        ("zzz", REFS, " Known: 'growth/revenue', 'growth/signups', 'retention/signups'."),
        ("zzz", [f"o/k{n}" for n in range(LISTED + 1)], ""),
        ("zzz", [], ""),
        ("2026-Q3", ["2026-Q4"], " Did you mean '2026-Q4'?"),
    ],
)
def test_suggest(name: str, known: list[str], hint: str) -> None:
    assert suggest(name, known) == hint


def test_close_names_are_best_first_and_at_most_three() -> None:
    known = ["listens", "listeners", "listener", "listened", "signups"]
    found = close_names("listeners", known)
    assert found[0] == "listeners" and len(found) == 3 and "signups" not in found
    assert 0 < CUTOFF < 1
