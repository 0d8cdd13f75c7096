"""Objective roll-up: carried and stale KRs count with their last good score, marked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from okr_pipeline.okr_core.rollup import KrScore, ObjectiveInput, rollup

D = Decimal


def test_carried_and_stale_krs_count_and_are_named() -> None:
    result = rollup(
        {
            "o": ObjectiveInput(
                krs=[
                    KrScore("a", 0.36, D(1), "carried"),
                    KrScore("b", 0.66, D(1), "current"),
                    KrScore("c", 0.66, D(1), "stale"),
                ]
            )
        }
    )["o"]
    assert result.score == pytest.approx(0.56)
    assert (result.carried, result.stale, result.unscored) == (("a",), ("c",), ())
    assert result.marked and not result.partial


def test_unscored_krs_make_the_score_partial_never_zero() -> None:
    result = rollup(
        {"o": ObjectiveInput(krs=[KrScore("a", 0.4, D(3)), KrScore("new", None, D(1), "unscored")])}
    )["o"]
    assert result.score == pytest.approx(0.4)  # not (0.4 * 3 + 0) / 4
    assert result.unscored == ("new",) and result.partial


def test_children_pass_their_marks_to_the_parent() -> None:
    scores = rollup(
        {
            "company": ObjectiveInput(krs=[KrScore("k", 0.5)]),
            "team-a": ObjectiveInput(krs=[KrScore("x", 0.9, 1, "carried")], parent="company"),
            "team-b": ObjectiveInput(krs=[KrScore("y", None, 1, "unscored")], parent="company"),
            "team-c": ObjectiveInput(krs=[KrScore("z", 0.1)], parent="company"),
        }
    )
    company = scores["company"]
    assert company.score == pytest.approx((0.5 + 0.9 + 0.1) / 3)
    assert company.partial_children == ("team-b",) and company.partial
    assert company.marked_children == ("team-a",)
    assert scores["team-b"].score is None and scores["team-b"].partial
    assert not scores["team-c"].marked


def test_a_cycle_in_the_parent_links_raises() -> None:
    with pytest.raises(ValueError, match="cycle"):
        rollup({"a": ObjectiveInput(parent="b"), "b": ObjectiveInput(parent="a")})
