"""Read a YAML file into ruamel's round-trip tree, which keeps line numbers for errors.

An ordinary file is read by libyaml's C parser into the same tree
(:mod:`okr_core.yaml_fast`, some 20 times faster); the rest, and every file with an error,
by ruamel's own parser below, whose messages say what and where.

Every file the product reads (OKR files, ``alerts.yaml``) comes through :func:`load_tree`,
which bounds what a small file can make the readers do:

- Aliases are counted while the file is composed, before anything is built: the nodes
  they stand for (fully expanded) may add up to :data:`MAX_ALIAS_NODES` per file. A
  "billion laughs" file of a few hundred bytes otherwise expands to millions of nodes in
  whatever walks the data afterwards (conversion to plain data, validation).
- Nesting, counted through aliases too, may go :data:`MAX_DEPTH` levels deep, so that no
  recursive reader (ruamel's, ours, pydantic's) can exhaust the stack.
- An alias cannot point into the collection that holds it (a self-containing value).
- Only YAML's own tags are accepted; ``!!python/...`` and unknown tags are refused.

Whatever ruamel raises on odd input (a ``!!bool maybe``, a month 13, an integer of
10,000 digits) becomes a :class:`YamlProblem` with the line of the value it was reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, StreamMark
from ruamel.yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import RoundTripScanner

from okr_pipeline.okr_core.errors import Problem
from okr_pipeline.okr_core.yaml_fast import fast_plain, fast_tree, plain_data

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "YamlProblem",
    "load_data",
    "load_tree",
    "ruamel_tree",
]

# Real files stay far below these: an OKR file is a few levels deep, and reusing a
# source through an alias costs some 10 nodes per use.
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64
# The pure-Python parser reads some 50 KB a second; 1 MB is some 1,500 KRs in one file.
MAX_BYTES = 1_000_000

_CORE = "tag:yaml.org,2002:"
_KNOWN_TAGS = {
    _CORE + name
    for name in (
        "str",
        "int",
        "float",
        "bool",
        "null",
        "map",
        "seq",
        "timestamp",
        "binary",
        "omap",
        "set",
        "pairs",
        "merge",
    )
}
# What a value must look like under a tag, for errors such as "!!bool maybe".
_TAG_HINTS = {
    "bool": "is not a boolean; write true or false",
    "int": "is not a whole number",
    "float": "is not a number",
    "timestamp": "is not a date or time; write a date like 2026-10-01 (quote it if it is text)",
}


_TOO_DEEP = f"the data is nested more than {MAX_DEPTH} levels deep; YAML data is limited to that"
# Integers longer than this are no metric anyone sets (and Python refuses to print them).
_MAX_INT_CHARS = 1000


class YamlProblem(Exception):
    """The file is not readable YAML; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Refused(MarkedYAMLError):
    """A limit of this module, raised at the mark of the alias, tag or node concerned."""


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _BoundedScanner(RoundTripScanner):
    """ruamel's scanner, refusing deep flow nesting (``[[[[...``) as soon as it is read."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        # The scanner re-checks every open bracket at each token, so thousands of them
        # cost seconds before the composer's own depth limit is reached.
        if len(self.flow_context) >= MAX_DEPTH:
            raise _Refused(None, None, _TOO_DEEP, self.reader.get_mark())
        super().fetch_flow_collection_start(TokenClass, to_push)


class _BoundedComposer(Composer):
    """ruamel's composer, counting what aliases expand to and how deep the data goes."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # legal YAML (the later anchor wins); no stderr noise
        self._expanded = 0
        # Per node (by id; every node lives until the document is built): its size and
        # depth with aliases expanded, so each shared subtree is measured once.
        self._measured: dict[int, tuple[int, int]] = {}

    def _measure(self, node: Node) -> tuple[int, int]:
        known = self._measured.get(id(node))
        if known is not None:
            return known
        size, depth = 1, 1
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        for child in children:
            # The composer has checked every alias below, so this recursion is at most
            # MAX_DEPTH deep and never meets a cycle.
            child_size, child_depth = self._measure(child)
            size += child_size
            depth = max(depth, child_depth + 1)
        self._measured[id(node)] = (size, depth)
        return size, depth

    def _check_alias(self, anchor: str, mark: StreamMark) -> None:
        node = self.anchors.get(anchor)
        if node is None:
            return  # ruamel reports the undefined alias
        if not isinstance(node, ScalarNode) and node.end_mark is None:
            # The anchored collection is still open: the alias is inside it.
            raise _Refused(
                None,
                None,
                f"alias *{anchor} is inside the value it names (a value cannot contain "
                "itself); write the data out instead",
                mark,
            )
        size, depth = self._measure(node)
        self._expanded += size
        if self._expanded > MAX_ALIAS_NODES:
            raise _Refused(
                None,
                None,
                f"too many alias expansions (*{anchor} brings the values reached through "
                f"aliases to more than {MAX_ALIAS_NODES:,}); YAML aliases are limited to "
                f"{MAX_ALIAS_NODES:,} expanded values per file: write the data out or use "
                "fewer nested aliases",
                mark,
            )
        if self.depth + depth > MAX_DEPTH:
            raise _Refused(
                None,
                None,
                f"alias *{anchor} nests the data more than {MAX_DEPTH} levels deep; "
                "YAML data is limited to that depth",
                mark,
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            self._check_alias(event.anchor, event.start_mark)
        elif isinstance(event, ScalarEvent | CollectionStartEvent):
            tag = event.ctag
            if tag is not None and str(tag) != "!":
                full = str(tag)
                if full not in _KNOWN_TAGS:
                    raise _Refused(
                        None,
                        None,
                        f"unknown YAML tag {_short_tag(full)!r}; remove it (only YAML's own "
                        "tags such as !!str are understood)",
                        event.start_mark,
                    )
            if isinstance(event, CollectionStartEvent) and self.depth >= MAX_DEPTH:
                raise _Refused(None, None, _TOO_DEEP, event.start_mark)
        return super().compose_node(parent, index)


class _LocatingConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor that says which node a failure happened at."""

    last_node: Node | None = None

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        self.last_node = node
        if (
            isinstance(node, ScalarNode)
            and node.tag == _CORE + "int"
            and len(node.value) > _MAX_INT_CHARS
        ):
            raise _Refused(
                None,
                None,
                f"{_shown(node.value)} has more than {_MAX_INT_CHARS} digits; no number here "
                "needs that many",
                node.start_mark,
            )
        try:
            return super().construct_object(node, deep=deep)
        except MarkedYAMLError:
            raise
        except Exception as exc:  # whatever a value makes ruamel raise
            if not isinstance(node, ScalarNode):
                raise
            raise _Refused(None, None, _value_message(node, exc), node.start_mark) from exc


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _one_line(text: str, limit: int = 300) -> str:
    # ruamel's messages may span lines or quote a whole mapping; a problem is one line.
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value_message(node: ScalarNode, exc: Exception) -> str:
    tag = str(node.tag)
    shown = _shown(str(node.value))
    detail = str(exc) if not isinstance(exc, KeyError) else ""  # a KeyError says only the key
    hint = _TAG_HINTS.get(tag.removeprefix(_CORE))
    if hint is not None:
        return f"{shown} {hint}" + (f" ({detail})" if detail else "")
    return f"cannot read {shown} as {_short_tag(tag)}" + (f" ({detail})" if detail else "")


def _line(mark: StreamMark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


def _text(file: Path, data: bytes) -> str:
    """The file's text, within this module's size limit.

    Raises:
        YamlProblem: too large, or not UTF-8.
    """
    if len(data) > MAX_BYTES:
        raise YamlProblem(
            Problem(
                file,
                "",
                None,
                f"the file is {len(data):,} bytes; files are limited to {MAX_BYTES:,} bytes "
                "(split it into several files)",
            )
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlProblem(
            Problem(
                file,
                "",
                line,
                f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8",
            )
        ) from exc


def load_tree(file: Path, data: bytes) -> Any:
    """Parse ``data`` (the bytes of ``file``) into a round-trip tree (None when empty).

    Raises:
        YamlProblem: not UTF-8, not YAML, beyond this module's limits, or a value that
            does not fit its tag, with the line where it can be told.
    """
    text = _text(file, data)
    read, tree = fast_tree(text, MAX_DEPTH)
    if read:
        return tree
    return ruamel_tree(file, text)


def load_data(file: Path, data: bytes) -> tuple[Any, Any]:
    """Parse ``data`` into plain data (dicts, lists, scalars), with lines only if at hand.

    An ordinary file is read by :func:`okr_core.yaml_fast.fast_plain`, which keeps no line
    numbers: the caller builds the tree with :func:`load_tree` when it has a problem to
    place. Any other file is read by ruamel, whose tree comes along.

    Returns:
        ``(data, tree)``: the plain data, and the round-trip tree or None when not built.

    Raises:
        YamlProblem: As :func:`load_tree`.
    """
    text = _text(file, data)
    read, plain = fast_plain(text, MAX_DEPTH)
    if read:
        return plain, None
    # What the plain reader refuses, the tree reader refuses too (the same rules).
    tree = ruamel_tree(file, text)
    return plain_data(tree), tree


def ruamel_tree(file: Path, text: str) -> Any:
    """Parse ``text`` with ruamel's own (pure-Python) reader; :func:`load_tree` without libyaml.

    Raises:
        YamlProblem: As :func:`load_tree`.
    """
    yaml = YAML(typ="rt", pure=True)
    yaml.Scanner = _BoundedScanner
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _LocatingConstructor
    try:
        return yaml.load(text)
    except _Refused as exc:
        problem = Problem(file, "", _line(exc.problem_mark), _one_line(str(exc.problem)))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        problem = Problem(file, "", _line(mark), _one_line(f"YAML syntax error: {what}"))
    except ReaderError as exc:
        at = exc.position
        at_line = text.count("\n", 0, at) + 1 if isinstance(at, int) else None
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "text"
        fix = "remove it, or write it as an escape in double quotes"
        problem = Problem(file, "", at_line, f"unacceptable {what} ({exc.reason}); {fix}")
    except Exception as exc:  # noqa: BLE001 - ruamel raises plain exceptions on odd input
        # The parser's failure is a property of the text: report it at the node being
        # built when it failed, if any.
        node = getattr(yaml.constructor, "last_node", None)
        problem = Problem(
            file,
            "",
            _line(node.start_mark) if node is not None else None,
            _one_line(f"YAML error: {exc}"),
        )
    raise YamlProblem(problem)
