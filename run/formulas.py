"""Formula KRs: checked when the definitions load, computed after the other KRs of a run.

A ``formula`` KR (``connectors/formula.py``) is arithmetic over other KRs' values at the
same as-of. It makes no external call, so the run does not fetch it: once the other KRs
are fetched, :func:`compute_formulas` evaluates the formula KRs in dependency order (a
formula may reference another formula), and their results flow through scoring, status,
storage and alerts like any fetched value.

Where a referenced value comes from, at the run's as-of T:

- a KR measured in this run: this run's result (a value; ``None`` when it had no data or
  its fetch failed);
- a formula KR computed in this run: its result, computed first;
- any other KR: its latest good stored value as of T or earlier (the value the KR has at T
  in ``okr status --at T``), ``None`` when it has none. A KR refreshed weekly thus keeps
  feeding a formula refreshed daily. A dry run whose definitions changed reads a scratch
  store without history, so references to KRs it does not measure have no data there.

Any missing referenced value makes the formula's result ``None``, i.e. ``no_data`` (never
0); a division by zero is the KR's error, naming the divisor. Backfills compute formulas at
the backfilled as-of, from the KRs measured in the backfill and the values stored then.

:func:`check_formulas` runs at load (``okr validate``, and every sync): it reports, with the
file and line of the formula KR, references that name no KR or several, loops of formulas
(``a → b → a``), and ``baseline: auto`` (a formula has no value at the cycle's start to
measure: declare the baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from okr_pipeline.connectors.formula import Formula, FormulaError, FormulaSourceConfig
from okr_pipeline.okr_core._problems import format_loc, line_of
from okr_pipeline.okr_core.errors import ConfigError, DefinitionError, Problem
from okr_pipeline.okr_core.loader import OkrSet
from okr_pipeline.okr_core.words import suggest
from okr_pipeline.okr_core.yaml_tree import YamlProblem, load_tree
from okr_pipeline.run.fetch import FetchResult

if TYPE_CHECKING:
    # Types only: `okr validate` and `okr source test` check formulas without the store,
    # whose package (SQLAlchemy, Alembic) costs a second to import.
    from okr_pipeline.okr_store.records import StoredKeyResult
    from okr_pipeline.okr_store.store import Store

__all__ = ["FORMULA", "check_formulas", "compute_formulas", "is_formula", "resolve_reference"]

FORMULA = "formula"


def is_formula(source: Mapping[str, Any]) -> bool:
    """True when a KR's ``source`` mapping is a formula (computed, not fetched)."""
    return source.get("type") == FORMULA


def resolve_reference(name: str, known: Iterable[tuple[str, str]]) -> str:
    """The ``objective/kr`` a formula's reference names.

    Args:
        name: The reference as written: ``objective/kr``, or a KR id alone.
        known: ``(objective/kr, kr id)`` of every KR it may name.

    Returns:
        The ``objective/kr`` of the one KR it names.

    Raises:
        ConfigError: No KR, or several (a bare id used in several objectives), answers.
    """
    pairs = list(known)
    if any(ref == name for ref, _ in pairs):
        return name
    by_id = sorted(ref for ref, key in pairs if key == name)
    if len(by_id) == 1:
        return by_id[0]
    if by_id:
        raise ConfigError(
            f"KR id {name!r} is in several objectives ({', '.join(by_id)}); "
            f"write [{by_id[0]}] to name one"
        )
    # A formula names a KR by its id, or by its ref in brackets: suggest the same form.
    candidates = {ref for ref, _ in pairs} if "/" in name else {key for _, key in pairs}
    hint = suggest(name, sorted(candidates)) or " 'okr status' lists the KRs."
    raise ConfigError(f"no KR named {name!r}.{hint}")


# -- at load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Declared:
    """A formula KR of the definition files, with where it is written."""

    ref: str
    file_index: int
    loc: tuple[str | int, ...]  # of its key result
    formula: Formula
    baseline_auto: bool


def check_formulas(okr_set: OkrSet) -> None:
    """Check every formula KR's references against the KRs of all the files.

    Args:
        okr_set: The loaded, otherwise valid definitions.

    Raises:
        DefinitionError: Listing, with file and line, every reference to no KR or to
            several, every loop of formulas (``o/a → o/b → o/a``) and every formula KR
            with ``baseline: auto``.
    """
    known: list[tuple[str, str]] = []
    declared: list[_Declared] = []
    for file_index, loaded in enumerate(okr_set.files):
        for i, objective in enumerate(loaded.definition.objectives):
            for j, kr in enumerate(objective.key_results):
                ref = f"{objective.id}/{kr.id}"
                known.append((ref, kr.id))
                if is_formula(kr.source):
                    config = FormulaSourceConfig.model_validate(kr.source)
                    loc = ("objectives", i, "key_results", j)
                    declared.append(
                        _Declared(
                            ref, file_index, loc, config.formula(), kr.needs_baseline_measurement()
                        )
                    )
    if not declared:
        return
    roots: dict[int, Any] = {}

    def problem(item: _Declared, where: tuple[str | int, ...], message: str) -> Problem:
        path = okr_set.files[item.file_index].path
        if item.file_index not in roots:
            try:
                roots[item.file_index] = load_tree(path, path.read_bytes())
            except (OSError, YamlProblem):  # pragma: no cover - it was just loaded
                roots[item.file_index] = None
        loc = item.loc + where
        return Problem(path, format_loc(loc), line_of(roots[item.file_index], loc), message)

    problems: list[Problem] = []
    edges: dict[str, list[str]] = {}
    for item in declared:
        if item.baseline_auto:
            problems.append(
                problem(
                    item,
                    ("baseline",),
                    "a formula KR cannot measure 'baseline: auto' (it has no value of its own "
                    "at the cycle's start); declare the baseline as a number",
                )
            )
        edges[item.ref] = []
        for name in item.formula.references:
            try:
                edges[item.ref].append(resolve_reference(name, known))
            except ConfigError as exc:
                problems.append(problem(item, ("source", "expression"), f"formula {name!r}: {exc}"))
    by_ref = {item.ref: item for item in declared}
    for loop in _loops(edges):
        problems.append(
            problem(
                by_ref[loop[0]],
                ("source", "expression"),
                f"formulas reference each other in a loop: {' → '.join([*loop, loop[0]])}; "
                "a formula cannot depend on its own value",
            )
        )
    if problems:
        raise DefinitionError(problems)


def _loops(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each loop of the formula graph once, starting at its first node in file order."""
    loops: list[list[str]] = []
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        # Depth-first, iteratively: the path from ``start`` and, per node, the next edge.
        path: list[str] = [start]
        on_path = {start}
        cursors = [0]
        while path:
            node = path[-1]
            targets = [t for t in edges.get(node, ()) if t in edges]
            if cursors[-1] >= len(targets):
                done.add(node)
                on_path.discard(node)
                path.pop()
                cursors.pop()
                continue
            target = targets[cursors[-1]]
            cursors[-1] += 1
            if target in on_path:
                loops.append(path[path.index(target) :])
            elif target not in done:
                path.append(target)
                on_path.add(target)
                cursors.append(0)
    return loops


# -- in a run ------------------------------------------------------------------------------


def compute_formulas(
    chosen: Sequence[StoredKeyResult],
    results: Sequence[FetchResult],
    active: Sequence[StoredKeyResult],
    store: Store,
    as_of: datetime,
    clock: Callable[[], datetime],
) -> list[FetchResult]:
    """Compute this run's formula KRs from the values of the others.

    Args:
        chosen: The KRs this run measures (formulas among them).
        results: The fetched results of the others (a formula KR's, if present, is replaced).
        active: Every active KR: what a reference may name.
        store: Where the values of KRs not measured in this run are read.
        as_of: The run's as-of.
        clock: Stamps the computed results.

    Returns:
        One result per KR of ``chosen``, in its order.
    """
    fetched = {r.kr_id: r for r in results}
    formulas = [kr for kr in chosen if is_formula(kr.source)]
    if not formulas:
        return [fetched[kr.kr_id] for kr in chosen]
    known = [(kr.ref, kr.kr_key) for kr in active]
    by_ref = {kr.ref: kr for kr in active}
    measured = {kr.ref: fetched.get(kr.kr_id) for kr in chosen if not is_formula(kr.source)}
    computed: dict[int, FetchResult] = {}
    plans: dict[str, tuple[StoredKeyResult, Formula, dict[str, str]]] = {}
    for kr in formulas:
        try:
            formula = FormulaSourceConfig.model_validate(dict(kr.source)).formula()
            names = {name: resolve_reference(name, known) for name in formula.references}
        except (ConfigError, ValueError) as exc:
            computed[kr.kr_id] = _failed(kr, clock(), f"invalid source: {exc}", "config")
            continue
        plans[kr.ref] = (kr, formula, names)

    stored_refs = {
        ref
        for _, _, names in plans.values()
        for ref in names.values()
        if ref not in measured and ref not in plans and ref in by_ref
    }
    stored = _stored_values([by_ref[ref] for ref in stored_refs], store, as_of)

    # Formulas of formulas: compute a formula once every formula it references is done.
    values: dict[str, Decimal | None] = {}
    pending = dict(plans)
    while pending:
        ready = [
            ref
            for ref, (_, _, names) in pending.items()
            if not any(target in pending for target in names.values())
        ]
        if not ready:  # a loop the loader would have refused: fail those KRs, not the run
            for kr, _, _ in pending.values():
                loop = ", ".join(sorted(pending))
                computed[kr.kr_id] = _failed(
                    kr, clock(), f"formulas reference each other in a loop: {loop}", "config"
                )
            break
        for ref in ready:
            kr, formula, names = pending.pop(ref)
            inputs: dict[str, Decimal | None] = {}
            for name, target in names.items():
                if target in plans:
                    inputs[name] = values.get(target)
                elif target in measured:
                    result = measured[target]
                    inputs[name] = result.value if result is not None and result.ok else None
                else:
                    inputs[name] = stored.get(target)
            try:
                value = formula.evaluate(inputs)
            except FormulaError as exc:
                computed[kr.kr_id] = _failed(
                    kr, clock(), f"formula {formula.expression!r}: {exc}", "fatal"
                )
                values[ref] = None
                continue
            computed[kr.kr_id] = FetchResult(kr.kr_id, clock(), value=value)
            values[ref] = value
    return [computed.get(kr.kr_id) or fetched[kr.kr_id] for kr in chosen]


def _stored_values(
    krs: Sequence[StoredKeyResult], store: Store, as_of: datetime
) -> dict[str, Decimal]:
    """Each KR's latest good value as of ``as_of`` or earlier, by ``objective/kr``."""
    if not krs:
        return {}
    history = store.history([kr.kr_id for kr in krs], until=as_of)
    return {kr.ref: history[kr.kr_id][-1][1] for kr in krs if history.get(kr.kr_id)}


def _failed(kr: StoredKeyResult, when: datetime, message: str, kind: str) -> FetchResult:
    return FetchResult(kr.kr_id, when, error=f"{kr.ref}: {message}", error_kind=kind)
