"""The libyaml reader builds exactly ruamel's tree, or hands the file to ruamel.

Compared on the OKR files the project ships (fixtures, the demo, the benchmark's), on
documents that YAML 1.1 and 1.2 read differently, and on generated documents: the plain
data and the line of every key and item must be the same; a file the fast reader does not
take must come back as "not read", never as a different tree.
"""

from __future__ import annotations

import io
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from okr_pipeline.demo.okrs import demo_okrs
from okr_pipeline.okr_core._problems import line_of
from okr_pipeline.okr_core.yaml_fast import fast_plain, fast_tree
from okr_pipeline.okr_core.yaml_fast import plain_data as _plain
from okr_pipeline.okr_core.yaml_tree import MAX_DEPTH, YamlProblem, load_tree, ruamel_tree

ROOT = Path(__file__).resolve().parents[2]
FILE = Path("okrs.yaml")


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, CommentedSeq):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def assert_same(text: str) -> None:
    read, fast = fast_tree(text, MAX_DEPTH)
    assert read, "the fast reader refused an ordinary document"
    slow = ruamel_tree(FILE, text)
    assert _plain(fast) == _plain(slow)
    assert type(_plain(fast)) is type(_plain(slow))
    # The reader that keeps no lines gives the same plain data, typed the same.
    taken, plain = fast_plain(text, MAX_DEPTH)
    assert taken, "the plain reader refused a document the tree reader took"
    assert plain == _plain(slow)
    assert repr(plain) == repr(_plain(slow))  # the same types, to the last value
    for loc in paths(slow):
        assert line_of(fast, loc) == line_of(slow, loc), loc
        if isinstance(slow, CommentedMap) and loc:
            parent_loc, key = loc[:-1], loc[-1]
            parent_fast, parent_slow = fast, slow
            for part in parent_loc:
                parent_fast, parent_slow = parent_fast[part], parent_slow[part]
            if isinstance(parent_slow, CommentedMap):
                # Where keys are is what messages use (an empty value's own position
                # differs between the parsers and is never shown).
                assert parent_fast.lc.key(key) == parent_slow.lc.key(key), loc


def shipped_files() -> list[tuple[str, str]]:
    files = [
        (str(p.relative_to(ROOT)), p.read_text())
        for p in sorted((ROOT / "tests").rglob("*.yaml"))
        if "cassettes" not in p.parts
    ]
    for name, text in demo_okrs("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)).items():
        files.append((f"demo/{name}", text))
    return [*files, ("bench", "")]  # the benchmark's files are written by the test


@pytest.mark.parametrize(("name", "text"), shipped_files(), ids=lambda v: str(v)[:40])
def test_the_files_we_ship_read_the_same(name: str, text: str, tmp_path: Path) -> None:
    if name == "bench":
        sys.path.insert(0, str(ROOT / "bench"))
        try:
            from bench_flow import write_project  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(ROOT / "bench"))
        write_project(tmp_path / "p", 60, "sqlite://", "sqlite://", 2)
        text = (tmp_path / "p" / "okrs" / "bench-000.yaml").read_text()
    assert_same(text)


TRICKY = {
    "yaml-1.1 booleans stay text": "a: yes\nb: no\nc: on\nd: off\ne: y\nf: True\ng: FALSE\n",
    "numbers": "a: 0o17\nb: 0x1F\nc: 1_000\nd: 1.5e3\ne: .inf\nf: -.Inf\ng: .nan\nh: 010\n"
    "i: +12\nj: 1.\nk: 12:30\nl: 0b101\nm: 1e3\n",
    "nulls": "a: ~\nb: null\nc:\nd: Null\n",
    "dates": "a: 2026-10-01\nb: 2026-10-01T10:00:00Z\nc: 2026-10-01 10:00:00+02:00\n"
    "d: '2026-10-01'\n",
    "text": "a: 'single ''quoted'''\nb: \"double \\t \\u00e9 \\\" \"\nc: |\n  literal\n   kept\n"
    "d: >\n  folded\n  lines\n\ne: plain with # not a comment\nf: é ü 日本\n",
    "keys": "'quoted key': 1\n1: one\nfalse: f\n2026-10-01: d\n~: n\n",
    "explicit !!str": "a: !!str 12\nb: !!str yes\n",
    "flow": "a: [1, 'two', {b: 3, c: [x, y]}]\nd: {}\ne: []\n",
    "comments": "# top\na: 1  # end\n# between\nb:\n  - 1 # item\n  - 2\n",
    "nested sequences": "- - a\n  - b\n- - c\n-\n  - d\n- {e: f}\n",
    "indentless sequence": "a:\n- 1\n- 2\nb:\n  c:\n  - x\n",
    "document markers": "---\na: 1\n...\n",
    "empty values": "a: ''\nb: \"\"\nc: []\n",
}


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_documents_yaml_1_1_and_1_2_could_read_differently(text: str) -> None:
    assert_same(text)


NOT_TAKEN = {
    "alias": "a: &x {b: 1}\nc: *x\n",
    "merge key": "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n",
    "merge key without an alias": "a: 1\n<<: {b: 2}\n",
    "merge value": "a: <<\n",
    "explicit tag": "a: !!int 12\n",
    "true and 1 as keys (one key to Python)": "1: one\ntrue: t\n",
    "unknown tag": "a: !thing 12\n",
    "duplicate key": "a: 1\na: 2\n",
    "complex key": "? [a, b]\n: 1\n",
    "next line (1.1 line break)": "a: x\x85y\n",
    "syntax error": "a: [1, 2\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "too deep": "a: " + "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2) + "\n",
    "month 13": "a: 2026-13-01\n",
}


@pytest.mark.parametrize("text", NOT_TAKEN.values(), ids=NOT_TAKEN.keys())
def test_unusual_documents_go_to_ruamel(text: str) -> None:
    assert fast_tree(text, MAX_DEPTH) == (False, None)
    assert fast_plain(text, MAX_DEPTH) == (False, None)


def test_the_depth_limit_is_the_same_in_both_fast_readers() -> None:
    for depth in (MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1):
        for leaf in ("x", "[]"):
            text = "[" * depth + leaf + "]" * depth + "\n"
            assert fast_plain(text, MAX_DEPTH)[0] == fast_tree(text, MAX_DEPTH)[0], (depth, leaf)


def test_errors_are_still_reported_with_their_line() -> None:
    with pytest.raises(YamlProblem) as caught:
        load_tree(FILE, b"a: 1\nb: [1, 2\nc: 3\n")
    assert caught.value.problem.line is not None
    assert "YAML syntax error" in caught.value.problem.message
    with pytest.raises(YamlProblem) as dup:
        load_tree(FILE, b"a: 1\nb: 2\na: 3\n")
    assert dup.value.problem.line == 3


def test_an_empty_document_is_none() -> None:
    assert fast_tree("", MAX_DEPTH) == (True, None)
    assert fast_tree("# only a comment\n", MAX_DEPTH) == (True, None)
    assert fast_plain("", MAX_DEPTH) == (True, None)
    assert fast_plain("---\n", MAX_DEPTH) == (True, None)


# Generated documents: nested data of the kinds OKR files hold, written by ruamel in block
# and in flow style, read back by both readers.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
    st.sampled_from(["yes", "no", "on", "0o17", "0x1f", "1_000", "12:30", "~", "null", "-"]),
)
_keys = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8),
    st.integers(0, 99),
)
_data = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.dictionaries(_keys, _data, min_size=1, max_size=5), flow=st.booleans())
def test_generated_documents_read_the_same(data: dict[Any, Any], flow: bool) -> None:
    writer = YAML(typ="rt")
    writer.default_flow_style = flow
    out = io.StringIO()
    writer.dump(data, out)
    text = out.getvalue()
    # A document it does not take is read by ruamel: nothing to compare. assume() makes
    # hypothesis fail the test if that happens to most documents.
    assume(fast_tree(text, MAX_DEPTH)[0])
    assert_same(text)
