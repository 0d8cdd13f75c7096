"""Turn pydantic errors into plain-worded :class:`Problem` entries with line numbers.

Private helper of :mod:`okr_core.loader`; kept apart so the loader reads like its steps.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from okr_pipeline.okr_core.definitions import (
    CycleDef,
    FieldError,
    KeyResultDef,
    ObjectiveDef,
    OkrFileDef,
)
from okr_pipeline.okr_core.errors import Problem

Loc = Sequence[str | int]

# Which model sits under which field, to list the valid keys for an unknown one.
_CHILD_MODELS: dict[type[BaseModel], dict[str, type[BaseModel]]] = {
    OkrFileDef: {"cycle": CycleDef, "objectives": ObjectiveDef},
    ObjectiveDef: {"key_results": KeyResultDef},
}


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def format_loc(loc: Loc) -> str:
    """Format a pydantic loc as a path.

    ``("objectives", 1, "key_results", 2, "target")`` -> ``objectives[1].key_results[2].target``;
    a key that is not a plain name is quoted: ``key_results[0]['my key']``.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _NAME.match(str(part)):
            # A key from the file may hold spaces, dots or a line break: quoted, it stays
            # on the problem's one line and reads as one key.
            text += f"[{one_line(repr(str(part)))}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped as repr does.

    A problem is printed as one line; values quoted from the file may hold anything.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def line_of(root: Any, loc: Loc) -> int | None:
    """1-based line of the deepest node of ``loc`` present in the ruamel tree ``root``."""
    node = root
    line: int | None = None
    if isinstance(node, CommentedMap | CommentedSeq):
        line = node.lc.line + 1
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break  # ruamel keeps no position for some nodes (e.g. merged keys)
    return line


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = OkrFileDef
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        model = _CHILD_MODELS.get(model, {}).get(part)
    return model


def _yaml_type(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _message(error: ErrorDetails, loc: Loc, *, in_file_model: bool) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        model = _model_at(loc[:-1]) if in_file_model else None
        if model is None:
            return f"unknown key {key!r}"
        valid = list(model.model_fields)
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {key!r} ({hint}valid: {', '.join(valid)})"
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}" if loc else "missing"
    if kind in ("string_type", "str_type"):
        return f"expected text, got {_yaml_type(value)} (quote it if it is meant as text)"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        want = "a list" if kind == "list_type" else "a mapping (key: value)"
        return f"expected {want}, got {_yaml_type(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, got {_yaml_type(value)}"
    if kind == "too_short" and isinstance(value, list | dict):
        return f"needs at least {ctx.get('min_length', 1)} entry, got none"
    if kind == "string_pattern_mismatch":
        return (
            f"{value!r} is not a valid id: use letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    if kind in (
        "date_type",
        "date_parsing",
        "date_from_datetime_parsing",
        "date_from_datetime_inexact",
    ):
        return f"expected a date like 2026-10-01, got {_yaml_type(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {_yaml_type(value)}"
    error_obj = ctx.get("error")
    if isinstance(error_obj, Exception):
        return str(error_obj)
    msg = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg[:1].lower() + msg[1:]


def problems_from_validation(
    exc: ValidationError, *, file: Path | None, root: Any, prefix: Loc = ()
) -> list[Problem]:
    """Translate a pydantic ValidationError into Problems located in the YAML tree.

    Args:
        exc: The validation error.
        file: The file the data came from.
        root: The ruamel tree of the whole file, for line numbers.
        prefix: Location of the validated data inside the file (e.g. a KR's source).

    Returns:
        One Problem per error, with its location and line.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc: list[str | int] = [*prefix, *error["loc"]]
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), FieldError):
            loc.extend(ctx["error"].path)
        # Pydantic tags function validators in the loc (e.g. "function-after[...]").
        loc = [part for part in loc if not (isinstance(part, str) and "[" in part)]
        problems.append(
            Problem(
                file,
                format_loc(loc),
                line_of(root, loc),
                one_line(_message(error, error["loc"], in_file_model=not prefix)),
            )
        )
    return problems
