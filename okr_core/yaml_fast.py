"""The fast ways to read an ordinary YAML file: libyaml's C parser, ruamel's tree and types.

:func:`okr_core.yaml_tree.load_tree` reads with ruamel's pure-Python round-trip parser,
which keeps line numbers and follows YAML 1.2, at some 100 KB a second: 10,000 KRs took
10 s to parse. :func:`fast_tree` composes the same text with libyaml (through PyYAML's
``CParser``, which Prefect already installs) and builds the very tree ruamel would build
for it: ``CommentedMap``/``CommentedSeq`` with the same line and column of every key and
item, and every plain scalar typed by ruamel's own YAML 1.2 resolver and constructor (so
``yes`` stays text and ``0o17`` is 15, as with ruamel).

It takes only files it is sure to read exactly as ruamel does: no aliases, merge keys,
explicit tags other than ``!!str``, duplicate or complex keys, numbers of over 100
characters, nor characters that YAML 1.1 and 1.2 treat differently. For anything else, and
for any error, it says "not read" and the caller reads the file with ruamel, whose messages
say what is wrong and where. A test compares both
readers on every YAML file of the repository and on generated documents.

:func:`fast_plain` reads the same files, with the same typing, straight into plain data
(``dict``, ``list``, ``str``, ``int``...), keeping no line numbers: five times faster than
building the tree, which the loader builds only for a file with a problem to place.
:func:`plain_data` turns a tree into the same plain data.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode as RuamelScalar
from ruamel.yaml.resolver import VersionedResolver

__all__ = ["fast_plain", "fast_tree", "plain_data"]

from yaml import (
    DocumentEndEvent,
    MappingEndEvent,
    MappingNode,
    MappingStartEvent,
    ScalarEvent,
    ScalarNode,
    SequenceEndEvent,
    SequenceNode,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml import YAMLError as _LibyamlError
from yaml.resolver import BaseResolver

try:  # libyaml is optional in PyYAML; without it the pure-Python reader is used
    from yaml._yaml import CParser

    _LIBYAML = True
except ImportError:  # pragma: no cover - every wheel of PyYAML on PyPI has libyaml
    _LIBYAML = False

_CORE = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP = _CORE + "str", _CORE + "seq", _CORE + "map"
_MAX_TYPED_CHARS = 100  # no number or date written by hand is longer
_PLAIN = "!okr-plain"  # our marker: a plain scalar, typed later by ruamel's resolver
# Characters YAML 1.1 (libyaml) reads as line breaks and YAML 1.2 (ruamel) as text.
_DIFFERENT_IN_1_1 = ("\x85", "\u2028", "\u2029")


class _NotPlain(Exception):
    """The file uses something only ruamel reads exactly; read it the slow way."""


if _LIBYAML:

    class _Composer(CParser, BaseResolver):
        """libyaml's composer that marks plain scalars instead of typing them (YAML 1.1)."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            BaseResolver.__init__(self)

        def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
            if kind is ScalarNode:
                return _PLAIN if implicit[0] else _STR
            return _SEQ if kind is SequenceNode else _MAP


_resolver = VersionedResolver(version=(1, 2))
_ruamel = YAML(typ="rt", pure=True)
# The first characters of every value YAML 1.2 may type as other than text (ruamel's table):
# a value starting with another character is text, with no regular expression tried.
_MAY_BE_TYPED = frozenset(_resolver.versioned_resolver)


@lru_cache(maxsize=4096)
def _typed(value: str) -> Any:
    tag = _resolver.resolve(RuamelScalar, value, (True, False))
    if tag == _STR:
        return value
    if len(value) > _MAX_TYPED_CHARS:
        raise _NotPlain  # the slow reader refuses an integer of thousands of digits
    # Numbers, booleans, nulls and dates: ruamel's constructor, so the types are its own.
    return _ruamel.constructor.construct_object(RuamelScalar(tag, value), deep=True)


def plain_data(node: Any) -> Any:
    """Ruamel's round-trip types -> plain dict/list/str/int/float/bool/date for validation."""
    if isinstance(node, dict):
        return {_plain_key(k): plain_data(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [plain_data(v) for v in node]
    return _plain_scalar(node)


def _plain_scalar(node: Any) -> Any:
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime):
        return datetime.fromisoformat(node.isoformat())
    if isinstance(node, date):
        return date(node.year, node.month, node.day)
    if node is None:
        return None
    return str(node)  # tagged scalars and other exotic nodes: let validation complain


def _plain_key(key: Any) -> Any:
    # Keys stay as YAML typed them so validation can say "keys should be strings"; a
    # complex key (``? [a, b]``) becomes text, as a list cannot be a dict key.
    if isinstance(key, str):
        return str(key)
    plain = plain_data(key)
    return str(plain) if isinstance(plain, list | dict) else plain


@lru_cache(maxsize=4096)
def _typed_plain(value: str) -> Any:
    return _plain_scalar(_typed(value))


def _scalar(node: Any) -> Any:
    if node.tag == _PLAIN:
        value = node.value
        if value == "<<":
            raise _NotPlain  # a merge key (or a value that ruamel refuses as one)
        return _typed(value) if value[:1] in _MAY_BE_TYPED else value
    if node.tag == _STR:
        return node.value  # quoted or block text, or an explicit !!str, text in both readers
    raise _NotPlain  # another explicit tag


def _build(node: Any, depth: int, seen: set[int], limit: int) -> Any:
    if id(node) in seen or depth > limit:
        raise _NotPlain  # an alias (the same node twice), or deeper than the limit
    seen.add(id(node))
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        if node.tag != _SEQ:
            raise _NotPlain
        seq = CommentedSeq()
        seq._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
        for index, item in enumerate(node.value):
            seq.append(_build(item, depth + 1, seen, limit))
            seq._yaml_set_idx_line_col(index, [item.start_mark.line, item.start_mark.column])
        return seq
    if not isinstance(node, MappingNode) or node.tag != _MAP:
        raise _NotPlain
    mapping = CommentedMap()
    mapping._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or id(key_node) in seen:
            raise _NotPlain  # a complex key or an aliased one
        seen.add(id(key_node))
        key = _scalar(key_node)
        if key in mapping:
            raise _NotPlain  # a duplicate key: ruamel's error says where
        mapping[key] = _build(value_node, depth + 1, seen, limit)
        mapping._yaml_set_kv_line_col(
            key,
            [
                key_node.start_mark.line,
                key_node.start_mark.column,
                value_node.start_mark.line,
                value_node.start_mark.column,
            ],
        )
    return mapping


def _plain_event_scalar(event: Any) -> Any:
    tag = event.tag
    if tag is None or tag == "!":  # resolved as libyaml's composer does (see _Composer)
        value = event.value
        if not event.implicit[0]:
            return value  # quoted or block text
        if value == "<<":
            raise _NotPlain  # a merge key (or a value that ruamel refuses as one)
        return _typed_plain(value) if value[:1] in _MAY_BE_TYPED else value
    if tag == _STR:
        return event.value
    raise _NotPlain  # another explicit tag


def _plain_document(parser: Any, max_depth: int) -> Any:
    """Plain data from libyaml's events, taking exactly the files :func:`_build` takes."""
    get = parser.get_event
    get()  # the stream's start
    if type(get()) is StreamEndEvent:
        return None  # no document at all (empty, or only comments)
    root: Any = None
    # The open collections' parents: (container, is_mapping, its key waiting for a value).
    stack: list[tuple[Any, bool, Any, bool]] = []
    current: Any = None
    is_map = False
    key: Any = None
    have_key = False
    while True:
        event = get()
        kind = type(event)
        if kind is ScalarEvent:
            if len(stack) >= max_depth:
                raise _NotPlain  # deeper than the slow reader's limit: it says so
            value = _plain_event_scalar(event)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            mapping = kind is MappingStartEvent
            if event.tag not in (None, "!", _MAP if mapping else _SEQ):
                raise _NotPlain
            if len(stack) >= max_depth:
                raise _NotPlain
            stack.append((current, is_map, key, have_key))
            current, is_map, have_key = ({} if mapping else []), mapping, False
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value = current
            current, is_map, key, have_key = stack.pop()
            if is_map and not have_key:
                raise _NotPlain  # a mapping or a list as a key
        elif kind is DocumentEndEvent:
            break
        else:  # an alias (the same node twice)
            raise _NotPlain
        if not stack:
            root = value  # the document's one top-level value
        elif not is_map:
            current.append(value)
        elif have_key:
            current[key] = value
            have_key = False
        elif value in current:
            raise _NotPlain  # a duplicate key: ruamel's error says where
        else:
            key, have_key = value, True
    if type(get()) is not StreamEndEvent:
        raise _NotPlain  # several documents: ruamel's error
    return root


def fast_plain(text: str, max_depth: int) -> tuple[bool, Any]:
    """Read ``text`` into plain data, as :func:`plain_data` of :func:`fast_tree`'s tree.

    No line numbers are kept: the caller builds the tree (:func:`fast_tree`) only when it
    has a problem to place.

    Args:
        text: The file's text.
        max_depth: The nesting limit of the slow reader; deeper files go to it.

    Returns:
        ``(True, data)``, or ``(False, None)`` when the file must be read by ruamel.
    """
    if not _LIBYAML or any(char in text for char in _DIFFERENT_IN_1_1):
        return False, None
    parser = _Composer(text)
    try:
        return True, _plain_document(parser, max_depth)
    except (_NotPlain, _LibyamlError, ValueError, TypeError, RecursionError):
        return False, None
    except Exception:  # noqa: BLE001 - whatever odd input makes ruamel's constructor raise
        return False, None
    finally:
        parser.dispose()


def fast_tree(text: str, max_depth: int) -> tuple[bool, Any]:
    """Read ``text`` as ruamel's round-trip reader would, if it is an ordinary file.

    Args:
        text: The file's text.
        max_depth: The nesting limit of the slow reader; deeper files go to it.

    Returns:
        ``(True, tree)`` with the tree (``None`` for an empty document), or ``(False, None)``
        when the file must be read by ruamel (unusual content, or an error to report).
    """
    if not _LIBYAML or any(char in text for char in _DIFFERENT_IN_1_1):
        return False, None
    parser = _Composer(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return True, None
        return True, _build(node, 1, set(), max_depth)
    except (_NotPlain, _LibyamlError, ValueError, TypeError, RecursionError):
        return False, None
    except Exception:  # noqa: BLE001 - whatever odd input makes ruamel's constructor raise
        return False, None
    finally:
        parser.dispose()
