"""Load OKR definition files into an :class:`OkrSet`, or fail listing every problem.

``load_okrs`` reads one YAML file or every ``*.yaml``/``*.yml`` under a folder (sorted,
recursive, hidden folders skipped), validates each against
:mod:`okr_core.definitions`, then checks what spans files: duplicate objective ids,
parents that name no objective, parent cycles, and one cycle name with different dates.
Each metric source is handed to the ``validate_source`` callback (the connector registry).
All problems of all files are collected before one :class:`DefinitionError` is raised;
bad input never escapes as any other exception.

``fingerprint`` hashes file names and bytes without parsing, so the flow can skip
re-loading unchanged definitions cheaply.

Line numbers cost more than the rest of loading: an ordinary file is read straight into
plain data (:func:`okr_core.yaml_tree.load_data`), and its line-keeping tree is built only
when a problem or a warning of that file needs a line.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from okr_pipeline.okr_core._problems import format_loc, line_of, one_line, problems_from_validation
from okr_pipeline.okr_core.definitions import CycleDef, KeyResultDef, ObjectiveDef, OkrFileDef
from okr_pipeline.okr_core.errors import DefinitionError, OkrError, Problem
from okr_pipeline.okr_core.yaml_tree import YamlProblem, load_data, load_tree

__all__ = ["LoadedFile", "OkrSet", "SourceValidator", "fingerprint", "load_okrs"]

SourceValidator = Callable[[Mapping[str, Any]], None]
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedFile:
    """One validated definition file."""

    path: Path
    definition: OkrFileDef


@dataclass
class OkrSet:
    """Every objective and key result of a set of definition files.

    Attributes:
        files: The files, in load order (sorted by relative path).
        fingerprint: :func:`fingerprint` of the bytes that were loaded.
    """

    files: list[LoadedFile]
    fingerprint: str
    # Computes the warnings with their lines, when asked (see ``warnings``).
    find_warnings: Callable[[], list[Problem]] | None = field(
        default=None, repr=False, compare=False
    )

    @cached_property
    def warnings(self) -> list[Problem]:
        """Advice that is not an error (e.g. objectives with 1 or 6+ KRs), with lines."""
        return self.find_warnings() if self.find_warnings is not None else []

    def objectives(self) -> Iterator[tuple[CycleDef, ObjectiveDef]]:
        """Yield ``(cycle, objective)`` for every objective, in file order."""
        for loaded in self.files:
            for objective in loaded.definition.objectives:
                yield loaded.definition.cycle, objective

    def key_results(self) -> Iterator[tuple[CycleDef, ObjectiveDef, KeyResultDef]]:
        """Yield ``(cycle, objective, key_result)`` for every KR, in file order."""
        for cycle, objective in self.objectives():
            for kr in objective.key_results:
                yield cycle, objective, kr


def _yaml_files(path: Path) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of the definition files under ``path``, sorted."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise DefinitionError(
            [Problem(path, "", None, "no such file or folder; pass the folder of your OKR files")]
        )
    found = []
    for candidate in path.rglob("*"):
        rel = candidate.relative_to(path)
        # Skip hidden folders and files (.git, .okr): they hold no definitions.
        if any(part.startswith(".") for part in rel.parts):
            continue
        if candidate.suffix.lower() in YAML_SUFFIXES and candidate.is_file():
            found.append((rel.as_posix(), candidate))
    return sorted(found)


def _hash(named_bytes: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in named_bytes:
        # Lengths delimit the fields, so moving bytes between name and content changes it.
        encoded = name.encode("utf-8", "surrogateescape")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def fingerprint(path: Path) -> str:
    """A sha256 over the relative names and bytes of the definition files; no parsing.

    Args:
        path: A definition file or a folder of them.

    Returns:
        The hex digest; equal to ``load_okrs(path).fingerprint`` for the same bytes.

    Raises:
        DefinitionError: ``path`` does not exist or a file cannot be read.
    """
    named = []
    for name, file in _yaml_files(Path(path)):
        try:
            named.append((name, file.read_bytes()))
        except OSError as exc:
            raise DefinitionError([Problem(file, "", None, f"cannot read: {exc}")]) from exc
    return _hash(named)


def _tree_or_none(file: Path, data: bytes) -> Any:
    try:
        return load_tree(file, data)
    except YamlProblem:  # pragma: no cover - the same bytes were just read
        return None


@dataclass
class _Parsed:
    """One file read: its plain data, its model if valid, its tree once a line is needed."""

    file: Path
    data: bytes
    plain: Any
    definition: OkrFileDef | None = None
    tree: Any = None  # set when ruamel read the file; else built by ``root``

    @property
    def root(self) -> Any:
        """The file's line-keeping tree (built on first use)."""
        if self.tree is None:
            self.tree = _tree_or_none(self.file, self.data)
        return self.tree


def _parse_file(file: Path, data: bytes, problems: list[Problem]) -> _Parsed | None:
    try:
        plain, tree = load_data(file, data)
    except YamlProblem as exc:
        problems.append(exc.problem)
        return None
    if plain is None:
        problems.append(Problem(file, "", 1, "file is empty; expected 'cycle:' and 'objectives:'"))
        return None
    if not isinstance(plain, dict):
        problems.append(
            Problem(file, "", 1, "the top level must be a mapping with 'cycle:' and 'objectives:'")
        )
        return None
    parsed = _Parsed(file, data, plain, tree=tree)
    try:
        parsed.definition = OkrFileDef.model_validate(plain)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, file=file, root=parsed.root))
    except RecursionError:
        problems.append(Problem(file, "", None, "the YAML is nested too deeply"))
        return None
    return parsed


def _check_sources(parsed: _Parsed, validate: SourceValidator, problems: list[Problem]) -> None:
    # Walk the raw data, not the models: sources are checked even in files that failed.
    objectives = parsed.plain.get("objectives")
    if not isinstance(objectives, list):
        return
    for i, objective in enumerate(objectives):
        krs = objective.get("key_results") if isinstance(objective, dict) else None
        if not isinstance(krs, list):
            continue
        for j, kr in enumerate(krs):
            source = kr.get("source") if isinstance(kr, dict) else None
            if not isinstance(source, dict) or not isinstance(source.get("type"), str):
                continue  # the model check already reports it
            loc: tuple[str | int, ...] = ("objectives", i, "key_results", j, "source")
            try:
                validate(source)
            except ValidationError as exc:
                problems.extend(
                    problems_from_validation(exc, file=parsed.file, root=parsed.root, prefix=loc)
                )
            except OkrError as exc:
                # A connector may say which key of the source is wrong (e.g. ("type",)).
                where = loc + tuple(getattr(exc, "loc", ()) or ())
                problems.append(
                    Problem(
                        parsed.file,
                        format_loc(where),
                        line_of(parsed.root, where),
                        one_line(str(exc)),
                    )
                )


def _objective_loc(parsed: _Parsed, index: int, key: str) -> tuple[str, int | None]:
    loc = ("objectives", index, key)
    return format_loc(loc), line_of(parsed.root, loc)


def _check_across_files(parsed_files: list[_Parsed], problems: list[Problem]) -> None:
    where: dict[str, tuple[_Parsed, int]] = {}
    for parsed in parsed_files:
        assert parsed.definition is not None
        for index, objective in enumerate(parsed.definition.objectives):
            if objective.id in where:
                first, first_index = where[objective.id]
                first_line = _objective_loc(first, first_index, "id")[1]
                loc, line = _objective_loc(parsed, index, "id")
                problems.append(
                    Problem(
                        parsed.file,
                        loc,
                        line,
                        f"objective id {objective.id!r} is already used in "
                        f"{first.file}:{first_line}",
                    )
                )
            else:
                where[objective.id] = (parsed, index)

    parents: dict[str, str] = {}
    for oid, (parsed, index) in where.items():
        assert parsed.definition is not None
        parent = parsed.definition.objectives[index].parent
        if parent is None:
            continue
        if parent in where:
            parents[oid] = parent
            continue
        close = difflib.get_close_matches(parent, list(where), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(where)[:20])}"
        loc, line = _objective_loc(parsed, index, "parent")
        problems.append(Problem(parsed.file, loc, line, f"no objective {parent!r}; {hint}"))

    reported: set[str] = set()
    for start in parents:
        chain = [start]
        while chain[-1] in parents and parents[chain[-1]] not in chain:
            chain.append(parents[chain[-1]])
        if chain[-1] in parents and parents[chain[-1]] == start and start not in reported:
            reported.update(chain)
            parsed, index = where[start]
            loc, line = _objective_loc(parsed, index, "parent")
            cycle_text = " -> ".join([*chain, start])
            problems.append(
                Problem(parsed.file, loc, line, f"parent links form a loop: {cycle_text}")
            )

    cycles: dict[str, tuple[_Parsed, CycleDef]] = {}
    for parsed in parsed_files:
        assert parsed.definition is not None
        cycle = parsed.definition.cycle
        if cycle.name not in cycles:
            cycles[cycle.name] = (parsed, cycle)
            continue
        first, known = cycles[cycle.name]
        if (known.start, known.end, known.timezone) != (cycle.start, cycle.end, cycle.timezone):
            problems.append(
                Problem(
                    parsed.file,
                    "cycle",
                    line_of(parsed.root, ("cycle",)),
                    f"cycle {cycle.name!r} is {cycle.start}..{cycle.end} ({cycle.timezone}) here "
                    f"but {known.start}..{known.end} ({known.timezone}) in {first.file}",
                )
            )


def load_okrs(path: Path, *, validate_source: SourceValidator | None = None) -> OkrSet:
    """Load and validate OKR definitions.

    Args:
        path: One YAML file, or a folder searched recursively for ``*.yaml``/``*.yml``.
        validate_source: Called with each KR's ``source`` mapping; raises
            ``pydantic.ValidationError`` or ``ConfigError`` when it is invalid.

    Returns:
        The validated set of definitions, with warnings.

    Raises:
        DefinitionError: Listing every problem in every file.
    """
    path = Path(path)
    files = _yaml_files(path)
    if not files:
        raise DefinitionError(
            [
                Problem(
                    path,
                    "",
                    None,
                    "no *.yaml or *.yml files here; add one with 'cycle:' and 'objectives:' "
                    "(see docs for the format)",
                )
            ]
        )
    problems: list[Problem] = []
    named_bytes: list[tuple[str, bytes]] = []
    parsed_files: list[_Parsed] = []
    for name, file in files:
        try:
            data = file.read_bytes()
        except OSError as exc:
            problems.append(Problem(file, "", None, f"cannot read: {exc.strerror or exc}"))
            continue
        named_bytes.append((name, data))
        parsed = _parse_file(file, data, problems)
        if parsed is None:
            continue
        if validate_source is not None:
            _check_sources(parsed, validate_source, problems)
        parsed_files.append(parsed)

    valid = [p for p in parsed_files if p.definition is not None]
    _check_across_files(valid, problems)
    if problems:
        raise DefinitionError(problems)

    loaded = [LoadedFile(p.file, p.definition) for p in valid if p.definition is not None]
    return OkrSet(
        files=loaded, fingerprint=_hash(named_bytes), find_warnings=_warnings_later(valid)
    )


def _warnings_later(valid: list[_Parsed]) -> Callable[[], list[Problem]]:
    """The warnings' messages now (cheap), their lines when asked (a tree per file)."""
    found: list[tuple[Path, bytes, Any, list[tuple[tuple[str | int, ...], str]]]] = []
    for parsed in valid:
        assert parsed.definition is not None
        items: list[tuple[tuple[str | int, ...], str]] = [
            (("objectives", index, "key_results"), message)
            for index, objective in enumerate(parsed.definition.objectives)
            for message in objective.warnings()
        ]
        if items:  # only these files' bytes are kept
            found.append((parsed.file, parsed.data, parsed.tree, items))

    def with_lines() -> list[Problem]:
        warnings = []
        for file, data, tree, items in found:
            root = tree if tree is not None else _tree_or_none(file, data)
            for loc, message in items:
                warnings.append(Problem(file, format_loc(loc), line_of(root, loc), message))
        return warnings

    return with_lines
