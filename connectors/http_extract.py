"""Pick a KR's value out of a JSON answer with JSONPath, and tell no data from a wrong path.

A path that matches nothing is one of two things, and they must not look alike:

* **No data** (``None``): the path exists in the answer, but the answer holds nothing there
  this time. That is: a ``null`` or ``NaN`` value; an empty list as the value; a ``null``
  met on the way (``{"data": null}`` for ``$.data.total``); an index past the end of a list
  that exists (``$.data.result[0]`` on an empty Prometheus vector: a list's length is data);
  a wildcard, slice or filter (``[*]``, ``[1:3]``, ``[?(@.id == 3)]``) that selects nothing
  from an object or list that exists.
* **A wrong path** (:class:`PathNotFound`): a key that the object reached does not have
  (``$.data.nps.scor`` where ``$.data.nps`` has ``score``); a key or index applied to a
  value of the wrong kind (a key on a list or a number, an index on an object); a
  ``$..key`` search that finds the key nowhere. The message names the path, the deepest part
  that matched and the keys that exist there; it never changes with the data, so retrying
  will not help.

Path steps that are neither keys, indexes, wildcards, slices, filters nor ``..`` searches
(extensions such as ``len``) that match nothing count as no data.
"""

from __future__ import annotations

import json
import re
import threading
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.filter import Filter
from jsonpath_ng.ext.parser import parse as parse_jsonpath
from jsonpath_ng.jsonpath import (
    Child,
    DatumInContext,
    Descendants,
    Fields,
    Index,
    Root,
    Slice,
    This,
    Wildcard,
)

from okr_pipeline.connectors.values import NotANumberError, to_decimal

__all__ = [
    "MAX_KEYS_SHOWN",
    "AnswerError",
    "NotJson",
    "PathNotFound",
    "compile_jsonpath",
    "extract_value",
    "find_value",
    "parse_json",
]

MAX_KEYS_SHOWN = 20
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARSE_LOCK = threading.Lock()


class AnswerError(ValueError):
    """The answer gives no usable value; the message says why (not yet redacted)."""


class NotJson(AnswerError):
    """The answer is not JSON; the message is the parser's reason."""


class PathNotFound(AnswerError):
    """The JSONPath names something the answer does not have; the message says what is there."""


@lru_cache(maxsize=1024)
def compile_jsonpath(path: str) -> JSONPath:
    """Parse a JSONPath (extended syntax: filters, arithmetic), cached.

    Args:
        path: The JSONPath text, e.g. ``$.data.total``.

    Returns:
        The parsed path.

    Raises:
        ValueError: The path is not valid JSONPath; the message has the parser's reason.
    """
    # The PLY-based parser is not known to be thread-safe; parsing is rare and cached.
    with _PARSE_LOCK:
        try:
            return parse_jsonpath(path)
        # The lexer and parser raise their own errors but also bare Exception subclasses.
        except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # noqa: BLE001
            raise ValueError(f"invalid JSONPath {path!r}: {exc}") from None


def _json_constant(name: str) -> Decimal:
    return Decimal(name)  # "NaN" -> no data; "Infinity" is refused by to_decimal


def parse_json(content: bytes) -> Any:
    """Parse a JSON answer with every number as an exact Decimal.

    Numbers of any size or exponent parse (``1e999999999`` too, and integers past Python's
    4300-digit conversion limit); whether they are in range is for ``to_decimal`` to say.

    Args:
        content: The body (UTF-8, -16 or -32).

    Returns:
        The parsed document.

    Raises:
        NotJson: Not JSON, or nested too deeply to parse.
    """
    try:
        return json.loads(
            content, parse_float=Decimal, parse_int=Decimal, parse_constant=_json_constant
        )
    except RecursionError:
        raise NotJson("nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJson(str(exc)) from exc


def extract_value(content: bytes, value_path: str) -> Decimal | None:
    """Parse a JSON answer and return the one number ``value_path`` selects.

    Args:
        content: The answer's body.
        value_path: A valid JSONPath.

    Returns:
        The exact value, in range (``connectors.values.to_decimal``); None for no data:
        null, NaN, an empty list, or a path that exists but selects nothing this time.

    Raises:
        NotJson: The answer is not JSON.
        PathNotFound: The path does not exist in the answer.
        AnswerError: Several values, or a value that is not a number or out of range.
    """
    values = find_value(parse_json(content), value_path)
    if not values:
        return None
    if len(values) > 1:
        raise AnswerError(
            f"value_path {value_path} matched {len(values)} values; expected 1. "
            "Make the path select a single value"
        )
    if isinstance(values[0], list) and not values[0]:
        return None  # an empty list where the value should be: no data this time
    try:
        return to_decimal(values[0])
    except NotANumberError as exc:
        raise AnswerError(f"value at {value_path} {exc}") from exc


def find_value(data: Any, value_path: str) -> list[Any]:
    """Return what ``value_path`` selects in ``data``, telling no data from a wrong path.

    Args:
        data: A parsed JSON document.
        value_path: A valid JSONPath.

    Returns:
        The selected values; an empty list means no data (see the module docstring).

    Raises:
        PathNotFound: The path does not exist in the answer.
    """
    matches = compile_jsonpath(value_path).find(data)
    if matches:
        return [m.value for m in matches]
    _diagnose(data, value_path)
    return []


def _steps(path: JSONPath) -> list[JSONPath]:
    if isinstance(path, Child):
        return _steps(path.left) + _steps(path.right)
    if isinstance(path, Descendants) and not isinstance(path.left, This):
        # $.a..b is "$.a" then "..b" from there.
        return [*_steps(path.left), Descendants(This(), path.right)]
    return [path]


def _diagnose(data: Any, value_path: str) -> None:
    # Walks the path step by step and looks at where it stopped matching.
    current = [DatumInContext(data)]
    shown = ""
    for step in _steps(compile_jsonpath(value_path)):
        found = [m for datum in current for m in step.find(datum)]
        if not found:
            problem = _problem(step, [d.value for d in current], shown or "$")
            if problem:
                raise PathNotFound(f"value_path {value_path} matched nothing: {problem}")
            return
        current, shown = found, shown + _render(step)


def _problem(step: JSONPath, values: list[Any], where: str) -> str | None:
    present = [v for v in values if v is not None]
    if not present:
        return None  # null on the way: the answer holds nothing here this time
    objects = [v for v in present if isinstance(v, dict)]
    if isinstance(step, Fields):
        if objects:
            return f"{where} {_keys(objects)}"
        return f"{where} is {_kind(present[0])}, not an object; {_hint(present[0])}"
    if isinstance(step, Index):
        if any(isinstance(v, list) for v in present):
            return None  # past the end of a list that exists
        if objects:
            return f"{where} is an object, not a list; it {_keys(objects)}"
        return f"{where} is {_kind(present[0])}, not a list"
    if isinstance(step, Wildcard | Slice | Filter):
        if objects or any(isinstance(v, list) for v in present):
            return None  # selected nothing from a container that exists
        return f"{where} is {_kind(present[0])}, not a list or object"
    if isinstance(step, Descendants) and isinstance(step.right, Fields):
        names = ", ".join(step.right.fields)
        return f"no key {names} anywhere under {where}"
    return None


def _keys(objects: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for obj in objects for k in obj))
    if not keys:
        return "is an empty object"
    shown = ", ".join(str(k) for k in keys[:MAX_KEYS_SHOWN])
    more = f" ... ({len(keys) - MAX_KEYS_SHOWN} more)" if len(keys) > MAX_KEYS_SHOWN else ""
    return f"has keys: {shown}{more}"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _hint(value: Any) -> str:
    if isinstance(value, list):
        return "select an element first, e.g. [0] or [*]"
    return "the path goes deeper than the answer"


def _render(step: JSONPath) -> str:
    if isinstance(step, Root):
        return "$"
    if isinstance(step, Fields):
        names = step.fields
        if len(names) == 1 and _IDENTIFIER.fullmatch(names[0]):
            return f".{names[0]}"
        return "[" + ",".join(repr(name) for name in names) + "]"
    if isinstance(step, Wildcard):
        return "[*]"
    if isinstance(step, Index | Slice):
        return str(step)
    if isinstance(step, Descendants):
        return f"..{step.right}"
    if isinstance(step, Filter):
        return f"[?({str(step)[2:-1]})]" if str(step).startswith("[?") else str(step)
    return f".{step}"
