"""What ``okr validate [PATH]`` checks: the project's OKR files, or one of them in its project.

One file of a multi-file project is not a project on its own: its ``parent:`` may name an
objective of another file, and a formula may reference another file's KR. So validating one
file of the project loads the whole project (to resolve those) and reports the problems and
counts of that file only; problems elsewhere are mentioned, not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from okr_pipeline.okr_core.errors import DefinitionError, Problem
from okr_pipeline.okr_core.settings import Settings


@dataclass
class Validated:
    """What validating found.

    Attributes:
        where: What was validated (a file or the OKR folder), for the messages.
        files: Files counted.
        objectives: Objectives counted (in those files).
        key_results: KRs counted (in those files).
        problems: The problems to list (of the files validated).
        warnings: The warnings to list (of the files validated).
        elsewhere: Problems in the project's other files (not listed).
    """

    where: Path
    files: int = 0
    objectives: int = 0
    key_results: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    elsewhere: int = 0


def _same(a: Path | None, b: Path) -> bool:
    return a is not None and a.resolve() == b


def _in_project(settings: Settings, path: Path) -> bool:
    folder = settings.resolved_okr_path().resolve()
    return path.is_file() and folder.is_dir() and path.is_relative_to(folder)


def validate_okr_files(settings: Settings, path: Path | None) -> Validated:
    """Validate the project's OKR files, or ``path`` (a file of the project, or elsewhere).

    Args:
        settings: The project's settings (its ``okr_path`` is the project's OKR folder).
        path: None for the whole project; a file inside the project's OKR folder is checked
            against the project; any other file or folder is checked on its own.
    """
    from okr_pipeline.run.definitions import load_definitions

    target = path.resolve() if path is not None else None
    one_file = target is not None and _in_project(settings, target)
    if target is not None and not one_file:
        settings = settings.model_copy(update={"okr_path": target})
    where = target if target is not None else settings.resolved_okr_path()
    try:
        okr_set = load_definitions(settings)
    except DefinitionError as exc:
        if not one_file:
            return Validated(where, problems=exc.problems)
        assert target is not None
        mine = [p for p in exc.problems if _same(p.file, target)]
        return Validated(where, problems=mine, elsewhere=len(exc.problems) - len(mine))
    if not one_file:
        objectives = list(okr_set.objectives())
        return Validated(
            where,
            files=len(okr_set.files),
            objectives=len(objectives),
            key_results=sum(len(o.key_results) for _, o in objectives),
            warnings=list(okr_set.warnings),
        )
    assert target is not None
    files = [f for f in okr_set.files if _same(f.path, target)]
    own = [o for f in files for o in f.definition.objectives]
    return Validated(
        where,
        files=len(files),
        objectives=len(own),
        key_results=sum(len(o.key_results) for o in own),
        warnings=[w for w in okr_set.warnings if _same(w.file, target)],
    )
