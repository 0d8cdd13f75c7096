"""Files that once crashed or hung the readers: each is now one problem with its line.

Every case is read the way the product reads it (OKR files through ``load_okrs``,
``alerts.yaml`` through ``load_routing``), under a time and memory bound, and must end
as a DefinitionError/RoutingError naming the file, the line and what to do.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from okr_pipeline.okr_core.alerting.routing import RoutingError, load_routing
from okr_pipeline.okr_core.errors import DefinitionError, Problem
from okr_pipeline.okr_core.loader import load_okrs
from okr_pipeline.okr_core.yaml_tree import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH

# Every case must finish well inside these (the alias bombs took 31 s and 1.2 GB). CPU
# seconds, not wall-clock; still, under tracemalloc on a loaded machine an ordinary file took
# just over 1 s once, so the bound is set to tell a blow-up (tens of seconds) from noise.
SECONDS = 5.0
PEAK_BYTES = 30_000_000

OKR = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31, timezone: Europe/Berlin}
objectives:
  - id: growth
    title: Grow
    owner: maya@example.com
    key_results:
      - id: signups
        title: Signups
        baseline: 100
        target: 150
        source: {type: sql, query: SELECT 1}
"""

ALERTS = """\
defaults:
  pending_evaluations: 2
  repeat_interval: 3d
routes:
  - name: data-team
    owners: [data-team]
    channels: ['json://hooks.example.com/okr']
default_route:
  channels: ['json://hooks.example.com/all']
"""


def nested_alias_bomb(levels: int, width: int, *, key: str = "lol") -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the previous one."""
    lines = [f"{key}0: &{key}0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*{key}{level - 1}"] * width)
        lines.append(f"{key}{level}: &{key}{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def merge_key_bomb(levels: int, width: int) -> str:
    """The same with merge keys and mappings: ``m1: &m1 {a0: *m0, a1: *m0, ...}``."""
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: v" for i in range(width)) + "}"]
    for level in range(1, levels):
        items = ", ".join(f"a{i}: *m{level - 1}" for i in range(width))
        lines.append(f"m{level}: &m{level} {{<<: *m{level - 1}, {items}}}")
    return "\n".join(lines) + "\n"


def alerts_bomb() -> str:
    """An alerts.yaml of ~640 bytes whose owner list expands to 8^8 globs."""
    lines = ["o0: &o0 [a@x.io, a@x.io, a@x.io, a@x.io, a@x.io, a@x.io, a@x.io, a@x.io]"]
    for level in range(1, 8):
        lines.append(f"o{level}: &o{level} [" + ", ".join([f"*o{level - 1}"] * 8) + "]")
    text = "\n".join(lines) + "\nroutes:\n  - {name: r, owners: *o7, channels: ['json://h/x']}\n"
    return text


def read_bounded(read: Callable[[], object]) -> None:
    """Run ``read`` and check it stays inside the time and memory bound."""
    tracemalloc.start()
    started = time.process_time()
    try:
        read()
    finally:
        elapsed = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < SECONDS, f"took {elapsed:.2f} s of CPU"
        assert peak < PEAK_BYTES, f"peak {peak / 1e6:.1f} MB"


def okr_problems(tmp_path: Path, data: str | bytes) -> list[Problem]:
    path = tmp_path / "q4.yaml"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    with pytest.raises(DefinitionError) as info:
        read_bounded(lambda: load_okrs(path))
    assert info.value.problems
    assert all(problem.file == path for problem in info.value.problems)
    return info.value.problems


def alerts_problems(tmp_path: Path, data: str | bytes) -> list[Problem]:
    path = tmp_path / "alerts.yaml"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    with pytest.raises(RoutingError) as info:
        read_bounded(lambda: load_routing(path))
    assert info.value.problems
    assert all(problem.file == path for problem in info.value.problems)
    return info.value.problems


def kr_line(text: str) -> str:
    """``OKR`` with ``text`` as an extra line of the KR (line 12 of the file)."""
    return OKR + f"        {text}\n"


def the_one(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# Each case: OKR file text, line of the problem, words the message must contain.
OKR_CASES = [
    pytest.param(
        nested_alias_bomb(9, 9) + OKR,
        5,
        f"too many alias expansions (*lol3 brings the values reached through aliases to "
        f"more than {MAX_ALIAS_NODES:,}); YAML aliases are limited to {MAX_ALIAS_NODES:,}",
        id="alias-bomb-9-levels",
    ),
    pytest.param(
        nested_alias_bomb(30, 2) + OKR,
        12,
        "too many alias expansions (*lol10",
        id="alias-bomb-deep-and-narrow",
    ),
    pytest.param(merge_key_bomb(9, 9) + OKR, 4, "too many alias expansions", id="merge-key-bomb"),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: &me [1, *me]"),
        9,
        "alias *me is inside the value it names",
        id="self-containing-alias",
    ),
    pytest.param(
        "deep: &d " + "[" * 40 + "]" * 40 + "\ndeeper: " + "[" * 30 + "*d" + "]" * 30 + "\n" + OKR,
        2,
        f"alias *d nests the data more than {MAX_DEPTH} levels deep",
        id="alias-deeper-than-the-limit",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: " + "[" * 5000 + "]" * 5000),
        9,
        f"the data is nested more than {MAX_DEPTH} levels deep",
        id="deep-flow-lists",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: " + "{a: " * 3000 + "1" + "}" * 3000),
        9,
        f"the data is nested more than {MAX_DEPTH} levels deep",
        id="deep-flow-mappings",
    ),
    pytest.param(
        OKR.replace(
            "baseline: 100",
            "baseline:\n" + "".join(" " * (10 + 2 * i) + "- \n" for i in range(200)),
        ),
        # Block nesting, a level a line from line 10; five collections hold the baseline,
        # so the one that opens level MAX_DEPTH + 1 is the (MAX_DEPTH - 5)th from there.
        10 + MAX_DEPTH - 5,
        f"the data is nested more than {MAX_DEPTH} levels deep",
        id="deep-block-lists",
    ),
    pytest.param(
        OKR.replace("Europe/Berlin", "Europe"),
        1,
        "cycle.timezone: timezone 'Europe' is not a time zone; use an IANA name such as "
        "'Europe/Paris'",
        id="timezone-is-a-folder",
    ),
    pytest.param(
        OKR.replace("Europe/Berlin", "A" * 256),
        1,
        "is not a time zone; use an IANA name",
        id="timezone-of-256-characters",
    ),
    pytest.param(
        OKR.replace("Europe/Berlin", '"Europe/\\0Berlin"'),
        1,
        "is not a time zone",
        id="timezone-with-nul",
    ),
    pytest.param(
        OKR.replace("Europe/Berlin", "Europe/Berlinn"),
        1,
        "unknown timezone 'Europe/Berlinn'",
        id="timezone-unknown",
    ),
    pytest.param(
        kr_line("x: !!bool maybe"), 12, "'maybe' is not a boolean; write true or false", id="bool"
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: !!int abc"),
        9,
        "'abc' is not a whole number",
        id="int-tag",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: !!float abc"),
        9,
        "'abc' is not a number",
        id="float-tag",
    ),
    pytest.param(
        OKR.replace("start: 2026-10-01", "start: 2026-13-45"),
        1,
        "'2026-13-45' is not a date or time",
        id="month-13",
    ),
    pytest.param(
        OKR.replace("start: 2026-10-01", "start: 0000-01-01"),
        1,
        "'0000-01-01' is not a date or time",
        id="year-0",
    ),
    pytest.param(
        OKR.replace("end: 2026-12-31", "end: 9999-12-31"),
        1,
        "cycle.end: 9999-12-31 is out of range; cycle dates lie between 1900 and 9000",
        id="year-9999",
    ),
    pytest.param(
        OKR.replace("start: 2026-10-01", "start: 2026-10-01T00:00:00+99:00"),
        1,
        "is not a date or time",
        id="offset-of-99-hours",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: !!timestamp soon"),
        9,
        "timestamp",
        id="timestamp-tag",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: " + "9" * 5000),
        9,
        "has more than 1000 digits",
        id="int-of-5000-digits",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: 0x" + "f" * 5000),
        9,
        "has more than 1000 digits",
        id="hex-int-of-5000-digits",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: !!python/object/apply:os.system ['true']"),
        9,
        "unknown YAML tag '!!python/object/apply:os.system'; remove it",
        id="python-tag",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: !metric 100"),
        9,
        "unknown YAML tag '!metric'",
        id="unknown-tag",
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: !!map 100"),
        9,
        "expected a mapping node, but found scalar",
        id="map-tag-on-a-scalar",
    ),
    pytest.param(kr_line("baseline: 5"), 12, 'found duplicate key "baseline"', id="duplicate-key"),
    pytest.param(
        kr_line("? [a, b]\n        : 1"), 7, "unknown key \"['a', 'b']\"", id="complex-key"
    ),
    pytest.param(
        OKR.replace("baseline: 100", "baseline: 1\x000"),
        9,
        "unacceptable character #x0000",
        id="nul-byte",
    ),
    pytest.param(
        OKR.encode() + b"        unit: \xff\xfe\n",
        12,
        "not UTF-8 text (invalid start byte at byte",
        id="invalid-utf8",
    ),
    pytest.param(
        OKR.replace("        target: 150", "\ttarget: 150"),
        10,
        "found character '\\t' that cannot start any token",
        id="tab-indent",
    ),
    pytest.param(OKR + "---\nmore: 1\n", 12, "expected a single document", id="two-documents"),
    pytest.param(
        kr_line("alerts: {repeat_interval: 99999999999999999999d}"),
        12,
        "key_results[0].alerts.repeat_interval: duration '99999999999999999999d' is too long",
        id="kr-alert-duration-beyond-timedelta",
    ),
    pytest.param(
        kr_line('"two\\nlines": 1'),
        12,
        "objectives[0].key_results[0]['two\\nlines']: unknown key 'two\\nlines'",
        id="key-with-a-line-break",
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), OKR_CASES)
def test_bad_okr_file_is_one_problem_with_its_line(
    tmp_path: Path, text: str | bytes, line: int, words: str
) -> None:
    problem = the_one(okr_problems(tmp_path, text))
    assert problem.line == line, problem
    assert words in str(problem), problem
    assert "\n" not in str(problem)


def test_bom_and_crlf_are_read(tmp_path: Path) -> None:
    path = tmp_path / "q4.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + OKR.replace("\n", "\r\n").encode())
    okrs = load_okrs(path)
    assert [kr.id for _, _, kr in okrs.key_results()] == ["signups"]


def test_anchors_within_the_budget_still_work(tmp_path: Path) -> None:
    # A source shared by 100 KRs through an alias and a merge key: ordinary reuse.
    krs = "".join(
        f"      - {{id: k{i}, title: K{i}, baseline: 0, target: 10, source: {{<<: *src}}}}\n"
        for i in range(100)
    )
    text = OKR.replace(
        "        source: {type: sql, query: SELECT 1}\n",
        "        source: &src {type: sql, connection: warehouse, query: SELECT 1}\n" + krs,
    )
    path = tmp_path / "q4.yaml"
    path.write_text(text)
    okrs: list[object] = []
    read_bounded(lambda: okrs.extend(load_okrs(path).key_results()))
    assert len(okrs) == 101


def test_the_whole_budget_is_read_quickly(tmp_path: Path) -> None:
    # Just under the limit: 9 aliases of a 1,000-value list, read in well under a second.
    text = (
        "big: &big [" + ", ".join(["1"] * 999) + "]\n"
        "copies: [" + ", ".join(["*big"] * (MAX_ALIAS_NODES // 1000 - 1)) + "]\n" + OKR
    )
    problems = okr_problems(tmp_path, text)
    assert [(p.line, p.loc) for p in problems] == [(1, "big"), (2, "copies")]
    assert all("unknown key" in p.message for p in problems)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    text = OKR + "# " + "x" * MAX_BYTES + "\n"
    problem = the_one(okr_problems(tmp_path, text))
    assert f"files are limited to {MAX_BYTES:,} bytes" in problem.message


# Each case: alerts.yaml text, line of the problem, words the message must contain.
ALERTS_CASES = [
    pytest.param(alerts_bomb(), 5, "too many alias expansions (*o3", id="alias-bomb"),
    pytest.param(
        nested_alias_bomb(9, 9) + ALERTS, 5, "too many alias expansions", id="alias-bomb-9-levels"
    ),
    pytest.param(merge_key_bomb(9, 9) + ALERTS, 4, "too many alias expansions", id="merge-bomb"),
    pytest.param(
        ALERTS.replace("[data-team]", "&me [*me]"),
        6,
        "alias *me is inside the value it names",
        id="self-containing-alias",
    ),
    pytest.param(
        ALERTS + "x: " + "[" * 5000 + "]" * 5000 + "\n",
        10,
        f"the data is nested more than {MAX_DEPTH} levels deep",
        id="deep-lists",
    ),
    pytest.param(ALERTS + "x: !!bool maybe\n", 10, "'maybe' is not a boolean", id="bool-maybe"),
    pytest.param(
        ALERTS.replace("pending_evaluations: 2", "pending_evaluations: !!int two"),
        2,
        "'two' is not a whole number",
        id="int-tag",
    ),
    pytest.param(
        ALERTS.replace("repeat_interval: 3d", "repeat_interval: 99999999999999999999d"),
        3,
        "defaults.repeat_interval: duration '99999999999999999999d' is too long",
        id="duration-beyond-timedelta",
    ),
    pytest.param(ALERTS + "x: !!python/name:os.system\n", 10, "unknown YAML tag", id="python-tag"),
    pytest.param(ALERTS + "x: \x07\n", 10, "unacceptable character #x0007", id="control-char"),
    pytest.param(ALERTS.encode() + b"\xc3", 10, "not UTF-8 text", id="truncated-utf8"),
    pytest.param(ALERTS + "routes: []\n", 10, 'duplicate key "routes"', id="duplicate-key"),
    pytest.param(
        ALERTS + '"two\\nlines": 1\n', 10, "['two\\nlines']: unknown key", id="key-with-a-break"
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), ALERTS_CASES)
def test_bad_alerts_file_is_one_problem_with_its_line(
    tmp_path: Path, text: str | bytes, line: int, words: str
) -> None:
    problem = the_one(alerts_problems(tmp_path, text))
    assert problem.line == line, problem
    assert words in str(problem), problem
    assert "\n" not in str(problem)


def test_alerts_bomb_is_small(tmp_path: Path) -> None:
    # The report was a 643-byte file; ours is of that size and expands to 8^8 owners.
    assert len(alerts_bomb()) < 700
