"""Read a YAML file into ruamel's round-trip tree, which keeps line numbers for errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from okr_core.errors import Problem


class YamlProblem(Exception):
    """The file is not readable YAML; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def load_tree(file: Path, data: bytes) -> Any:
    """Parse ``data`` (the bytes of ``file``) into a round-trip tree (None when empty).

    Raises:
        YamlProblem: not UTF-8, or not YAML, with the line where it can be told.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(
            Problem(file, "", None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        ) from exc
    try:
        return YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise YamlProblem(Problem(file, "", line, f"YAML syntax error: {what}")) from exc
    except (YAMLError, RecursionError, ValueError, TypeError, AttributeError) as exc:
        # ruamel raises several plain exceptions on odd input (e.g. unhashable keys).
        raise YamlProblem(Problem(file, "", None, f"YAML syntax error: {exc}")) from exc
