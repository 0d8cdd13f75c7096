"""Objective scores rolled up the alignment tree, saying what each one is made of.

An objective's score is the weighted mean of its KRs' scores (KR weights) and of its child
objectives' scores (weight 1 each, like one default-weight KR). What a KR puts in depends
on where it stands (its *basis*):

* ``current``: its latest evaluation has a score: that score.
* ``carried``: its latest evaluation has none (the source failed, or answered without a
  value) and it is not stale: its **last good score**, the score of its last good value.
  A source that is down for a run does not move the objective (it used to jump from 0.56
  to 0.66 when a low-scoring KR's source failed and the KR dropped out of the mean).
* ``stale``: no good value for longer than its schedule allows: its last good score still
  counts, marked stale. Dropping it would move the objective for a reason that is not
  about the metric (the same jump as above, only later); the mark tells the reader how old
  the number is, as the KR's own row does.
* ``unscored``: never measured, or never a value that could be scored (no good value yet,
  baseline not measured): nothing to count, and never 0. It is left out of the mean and
  the objective's score is **partial**, naming it.

A parent whose child is partial, or has no score, is partial too (the child is named); a
child's carried or stale KRs are named in the child's own score, and the parent lists the
child among ``marked_children``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

__all__ = [
    "KrScore",
    "ObjectiveInput",
    "ObjectiveScore",
    "ObjectiveScoreInput",
    "ScoreBasis",
    "objective_scores",
    "rollup",
]

ScoreBasis = Literal["current", "carried", "stale", "unscored"]


@dataclass(frozen=True)
class KrScore:
    """What one KR puts into its objective's score.

    Attributes:
        key: The KR's id within its objective, to name it.
        score: The score it counts with (its own, or its last good one); None if unscored.
        weight: Its weight in the objective.
        basis: Where the score comes from (see the module docstring).
    """

    key: str
    score: float | None
    weight: Decimal | float = Decimal(1)
    basis: ScoreBasis = "current"


@dataclass(frozen=True)
class ObjectiveInput:
    """One objective for :func:`rollup`: its KRs and the objective it supports."""

    krs: Sequence[KrScore] = field(default_factory=tuple)
    parent: str | None = None


@dataclass(frozen=True)
class ObjectiveScore:
    """An objective's score and what it is made of.

    Attributes:
        score: The weighted mean, or None when nothing under the objective has a score.
        carried: KRs counted with their last good score (source failing, not stale yet).
        stale: KRs counted with their last good score, which is older than they allow.
        unscored: KRs left out: never measured or never scored.
        partial_children: Child objectives left out (no score) or partial themselves.
        marked_children: Child objectives counted whose score carries a mark.
    """

    score: float | None
    carried: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    unscored: tuple[str, ...] = ()
    partial_children: tuple[str, ...] = ()
    marked_children: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        """True when something under the objective is left out of its score."""
        return bool(self.unscored or self.partial_children)

    @property
    def marked(self) -> bool:
        """True when the score is anything but a mean of current scores."""
        return bool(self.partial or self.carried or self.stale or self.marked_children)


def rollup(objectives: Mapping[str, ObjectiveInput]) -> dict[str, ObjectiveScore]:
    """Every objective's score with its marks, rolled up the alignment tree.

    Args:
        objectives: Every objective by id. A ``parent`` not in the mapping is ignored.

    Returns:
        The score of each objective (rules in the module docstring).

    Raises:
        ValueError: The parent links form a cycle.
    """
    children: dict[str, list[str]] = {oid: [] for oid in objectives}
    for oid, obj in objectives.items():
        if obj.parent is not None and obj.parent in objectives:
            children[obj.parent].append(oid)

    result: dict[str, ObjectiveScore] = {}
    visiting: set[str] = set()

    def solve(oid: str) -> ObjectiveScore:
        if oid in result:
            return result[oid]
        if oid in visiting:
            raise ValueError(f"objective parent links form a cycle through {oid!r}")
        visiting.add(oid)
        total = weights = 0.0
        marks: dict[str, list[str]] = {"carried": [], "stale": [], "unscored": []}
        for kr in objectives[oid].krs:
            if kr.score is None or kr.basis == "unscored":
                marks["unscored"].append(kr.key)
                continue
            total += kr.score * float(kr.weight)
            weights += float(kr.weight)
            if kr.basis in ("carried", "stale"):
                marks[kr.basis].append(kr.key)
        partial_children: list[str] = []
        marked_children: list[str] = []
        for child in children[oid]:
            sub = solve(child)
            if sub.score is None or sub.partial:
                partial_children.append(child)
            elif sub.marked:
                marked_children.append(child)
            if sub.score is not None:
                total += sub.score
                weights += 1.0
        visiting.discard(oid)
        result[oid] = ObjectiveScore(
            score=total / weights if weights > 0 else None,
            carried=tuple(marks["carried"]),
            stale=tuple(marks["stale"]),
            unscored=tuple(marks["unscored"]),
            partial_children=tuple(partial_children),
            marked_children=tuple(marked_children),
        )
        return result[oid]

    for oid in objectives:
        solve(oid)
    return result


@dataclass(frozen=True)
class ObjectiveScoreInput:
    """One objective for :func:`objective_scores`.

    Attributes:
        kr_scores: ``(score, weight)`` per KR; a ``None`` score means not scored.
        parent: Id of the objective this one supports, if any.
    """

    kr_scores: Sequence[tuple[float | None, Decimal | float]] = field(default_factory=tuple)
    parent: str | None = None


def objective_scores(objectives: Mapping[str, ObjectiveScoreInput]) -> dict[str, float | None]:
    """Objective scores only, from plain ``(score, weight)`` pairs (see :func:`rollup`).

    Args:
        objectives: Every objective by id. A ``parent`` not in the mapping is ignored.

    Returns:
        Score per objective id; None when nothing under it is scored.

    Raises:
        ValueError: The parent links form a cycle.
    """
    inputs = {
        oid: ObjectiveInput(
            krs=[
                KrScore(str(i), s, w, "current" if s is not None else "unscored")
                for i, (s, w) in enumerate(obj.kr_scores)
            ],
            parent=obj.parent,
        )
        for oid, obj in objectives.items()
    }
    return {oid: item.score for oid, item in rollup(inputs).items()}
