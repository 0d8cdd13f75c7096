"""Fuzz both file kinds: any bytes give a definition set or problems with file and line.

The inputs are mutations of real files (the fixtures, the demo's OKR files, an
``alerts.yaml`` like the demo's): spans deleted or repeated, YAML's special tokens
(anchors, aliases, merge keys, tags, brackets, tabs, NULs) inserted, bytes flipped, and
values swapped for arbitrary data. Each input must be read within a time and memory
bound and end either valid or as a DefinitionError/RoutingError whose problems name the
file and a line, one line of text each; never as another exception.

Runs are deterministic (``derandomize``) and sized for CI; set OKR_FUZZ_EXAMPLES to
explore more, and OKR_FUZZ_RANDOM=1 for other inputs than CI's.
"""

from __future__ import annotations

import io
import os
import re
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.demo.okrs import demo_okrs
from okr_pipeline.okr_core.alerting.routing import RoutingError, load_routing
from okr_pipeline.okr_core.errors import DefinitionError, Problem
from okr_pipeline.okr_core.loader import load_okrs

EXAMPLES = int(os.environ.get("OKR_FUZZ_EXAMPLES", "25"))
# CPU seconds, not wall-clock: the bound must hold on a busy CI machine too.
SECONDS_PER_INPUT = 2.0
PEAK_BYTES_PER_INPUT = 50_000_000

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # wall-clock; the CPU-time bound is checked by `bounded`
    derandomize=not os.environ.get("OKR_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

FIXTURES = Path(__file__).parent / "fixtures"
OKR_SEEDS = [
    (FIXTURES / "valid" / "q4.yaml").read_text(encoding="utf-8"),
    # Each demo file on its own: without the parent link that points into the other one.
    *(
        re.sub(r"\n *parent: .*", "", text)
        for text in demo_okrs("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)).values()
    ),
]
ALERTS_SEEDS = [
    "# Where alerts go.\n"
    "report_url: https://okr.example.com/status\n"
    "defaults:\n  pending_evaluations: 2\n  repeat_interval: 3d\n"
    "routes:\n  - name: data-team\n    owners: [data-team, '*@data.example.com']\n"
    "    channels: ['json://127.0.0.1:8765/hooks/okr?+X-Team=data']\n"
    "  - name: podcasts\n    owners: [maya@example.com]\n"
    "    channels: ['json://hooks.example.com/okr/${secret:hook_token}']\n"
    "default_route:\n  channels: ['json://127.0.0.1:8765/hooks/okr']\n",
]

# What YAML gives meaning to, and values that once crashed a reader.
TOKENS = [
    "&a ", "*a", "&b [*a, *a, *a, *a]", "*b", "<<: *a", "<<: ", "? ", ": ", "- ", ", ",
    "[", "]", "{", "}", "[[[[[[[[", "\t", "\n", "\r\n", "  ", "#", "'", '"', "|", ">", "---",
    "...", "%YAML 1.1\n", "!", "!!bool maybe", "!!int x", "!!float", "!!timestamp 2026-13-01",
    "!!binary x", "!!set {a}", "!!omap [a: 1]", "!!python/name:os.system", "!foo", "!!str",
    "\x00", "\x07", "\ufeff", "\u2028", "~", "null", ".nan", "-.inf", "1e999999999",
    "9" * 60, "0x" + "f" * 60, "2026-02-30", "0000-01-01", "9999-12-31", "Europe",
    "A" * 256, "../..", "auto", "+20%", "-1", "0", "99999999999999999999d", "* * * * *",
    "0 0 31 2 *", "${secret:x}", "${", "json://", "[abc", "yes",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> bytes:
    """A seed with a few edits: token inserts, span deletes and repeats, byte flips."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "insert", "delete", "repeat", "value", "indent"]))
        if kind == "insert":
            token = draw(st.sampled_from(TOKENS) | st.text(max_size=6))
            text = text[:at] + token + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "repeat":
            span = text[at : at + draw(st.integers(1, 60))]
            text = text[:at] + span * draw(st.integers(2, 4)) + text[at:]
        elif kind == "value":
            # Swap what follows the next "key: " for a token: a wrong value in a right place.
            colon = text.find(": ", at)
            end = text.find("\n", colon) if colon != -1 else -1
            if end != -1:
                text = text[: colon + 2] + draw(st.sampled_from(TOKENS)) + text[end:]
        else:
            start = text.rfind("\n", 0, at) + 1
            text = text[:start] + " " * draw(st.integers(1, 3)) + text[start:]
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            paths.extend(_leaves(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths.extend(_leaves(value, (*path, index)))
    return paths


KEYS = st.text(max_size=8) | st.sampled_from(["id", "type", "source", "cycle", "routes"])
ANY_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(TOKENS)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def retyped(draw: st.DrawFn, seeds: list[str]) -> bytes:
    """A seed read as data, with some values replaced by arbitrary data, written back."""
    data = YAML(typ="safe", pure=True).load(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _leaves(data)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        value = draw(ANY_VALUE)
        if not path:
            data = value
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue().encode("utf-8", "surrogatepass")


def bounded(read: Callable[[], object]) -> None:
    """Run ``read`` within the time and memory bound of one input."""
    tracemalloc.start()
    started = time.process_time()
    try:
        read()
    finally:
        elapsed = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < SECONDS_PER_INPUT, f"took {elapsed:.2f} s of CPU"
        assert peak < PEAK_BYTES_PER_INPUT, f"peak {peak / 1e6:.0f} MB"


def assert_located(problems: list[Problem], path: Path) -> None:
    assert problems, "an error must list its problems"
    for problem in problems:
        assert problem.file == path, problem
        assert problem.line is not None, problem
        assert problem.message and "\n" not in str(problem), problem


def validate_source(raw: Any) -> None:
    parse_source_config(raw)  # the connector registry, as `okr validate` checks sources


def check_okr_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)

    def read() -> None:
        try:
            okrs = load_okrs(path, validate_source=validate_source)
        except DefinitionError as exc:
            assert_located(exc.problems, path)
            return
        for cycle, _, _ in okrs.key_results():
            assert cycle.start_at() < cycle.end_at()  # a valid cycle is usable

    bounded(read)


def check_alerts_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)

    def read() -> None:
        try:
            routing = load_routing(path)
        except RoutingError as exc:
            assert_located(exc.problems, path)
            return
        routing.route_for("maya@example.com")  # a valid routing is usable

    bounded(read)


def test_seeds_are_valid(tmp_path: Path) -> None:
    # The mutations start from valid files, so a mutation's problems are its own.
    for index, seed in enumerate(OKR_SEEDS):
        load_okrs(_write(tmp_path / f"seed{index}.yaml", seed), validate_source=validate_source)
    for index, seed in enumerate(ALERTS_SEEDS):
        assert load_routing(_write(tmp_path / f"alerts{index}.yaml", seed)).routes


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@FUZZ
@given(data=mutated(OKR_SEEDS))
def test_mutated_okr_files(tmp_path: Path, data: bytes) -> None:
    check_okr_file(tmp_path / "okrs.yaml", data)


@FUZZ
@given(data=retyped(OKR_SEEDS))
def test_retyped_okr_files(tmp_path: Path, data: bytes) -> None:
    check_okr_file(tmp_path / "okrs.yaml", data)


@FUZZ
@given(data=mutated(ALERTS_SEEDS))
def test_mutated_alerts_files(tmp_path: Path, data: bytes) -> None:
    check_alerts_file(tmp_path / "alerts.yaml", data)


@FUZZ
@given(data=retyped(ALERTS_SEEDS))
def test_retyped_alerts_files(tmp_path: Path, data: bytes) -> None:
    check_alerts_file(tmp_path / "alerts.yaml", data)


def test_each_crashing_token_as_each_value(tmp_path: Path) -> None:
    # A bounded, exhaustive corpus next to the random one: each token that once crashed
    # or hung a reader, as the value of each key of the fixture.
    lines = OKR_SEEDS[0].splitlines(keepends=True)
    tokens = ["&a [*a]", "!!bool maybe", "[" * 100, "Europe"]
    for index, line in enumerate(lines):
        if ": " not in line or line.lstrip().startswith("#"):
            continue
        key, _, _ = line.partition(": ")
        for token in tokens:
            mutant = "".join([*lines[:index], f"{key}: {token}\n", *lines[index + 1 :]])
            check_okr_file(tmp_path / "okrs.yaml", mutant.encode("utf-8"))
