"""Definition loader: the example loads; every mistake is a Problem with file, line and loc."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from okr_pipeline.okr_core.errors import ConfigError, DefinitionError, Problem
from okr_pipeline.okr_core.loader import fingerprint, load_okrs

FIXTURES = Path(__file__).parent / "fixtures"

HEADER = "cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}\nobjectives:\n"


def objective(oid: str = "obj", parent: str | None = None, krs: str | None = None) -> str:
    """YAML for one objective (indented for the objectives list) with two valid KRs."""
    parent_line = f"    parent: {parent}\n" if parent else ""
    krs = krs or (
        "      - id: k1\n        title: K1\n        baseline: 0\n        target: 10\n"
        "        source: {type: sql, query: SELECT 1}\n"
        "      - id: k2\n        title: K2\n        baseline: 5.5\n        target: 2\n"
        "        source: {type: http, path: /x}\n"
    )
    return (
        f"  - id: {oid}\n    title: Objective {oid}\n    owner: maya@example.com\n"
        f"{parent_line}    key_results:\n{krs}"
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(path: Path, **kwargs: Any) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        load_okrs(path, **kwargs)
    assert info.value.problems, "a DefinitionError must list its problems"
    return info.value.problems


def test_example_loads() -> None:
    okrs = load_okrs(FIXTURES / "valid")
    rows = list(okrs.key_results())
    assert [(o.id, kr.id) for _, o, kr in rows] == [
        ("podcast-discovery", "first-time-listeners"),
        ("podcast-discovery", "response-time"),
    ]
    cycle, objective_def, listeners = rows[0]
    assert cycle.timezone == "Europe/Berlin"
    assert cycle.start_at().isoformat() == "2026-09-30T22:00:00+00:00"
    assert cycle.end_at().isoformat() == "2026-12-31T23:00:00+00:00"
    assert objective_def.effective_success_level == 0.7
    assert listeners.baseline == "auto" and listeners.target == "+20%"
    assert listeners.kind == "increase" and listeners.schedule == "0 6 * * *"
    assert listeners.spec(Decimal(200)).target == Decimal(240)
    response = rows[1][2]
    assert response.kind == "decrease"
    assert response.baseline == Decimal("5.5") and response.target == Decimal(2)
    assert response.weight == Decimal(1) and response.schedule == "0 * * * *"
    assert response.source["value_path"] == "$.data.value"
    assert okrs.warnings == []
    assert okrs.fingerprint == fingerprint(FIXTURES / "valid")
    assert [c.id for _, c in okrs.objectives()] == ["podcast-discovery"]


# Each case: file text, expected loc, expected line, words the message must contain.
ERROR_TABLE = [
    pytest.param("cycle: [1\n", "", 2, "YAML syntax error", id="yaml-syntax"),
    pytest.param("- a\n- b\n", "", 1, "top level must be a mapping", id="top-not-mapping"),
    pytest.param("", "", 1, "empty", id="empty-file"),
    pytest.param(
        HEADER
        + objective().replace("    title: Objective obj\n", "    title: O\n    colour: red\n"),
        "objectives[0].colour",
        5,
        "unknown key 'colour' (valid: id, title,",
        id="unknown-key",
    ),
    pytest.param(
        HEADER + objective().replace("target: 10", "targte: 10"),
        "objectives[0].key_results[0].targte",
        10,
        "did you mean 'target'",
        id="typo-key",
    ),
    pytest.param(
        HEADER
        + objective(
            krs="      - id: k1\n        title: A\n        kind: milestone\n"
            "        source: {type: sql}\n"
            "      - id: k1\n        title: B\n        kind: milestone\n"
            "        source: {type: sql}\n"
        ),
        "objectives[0].key_results[1].id",
        11,
        "duplicate key result id 'k1'",
        id="dup-kr",
    ),
    pytest.param(
        HEADER + objective("a") + objective("a"),
        "objectives[1].id",
        17,
        "duplicate objective id 'a'",
        id="dup-objective-in-file",
    ),
    pytest.param(
        "cycle: {name: Q, start: 2026-10-01, end: 2026-09-30}\nobjectives:\n" + objective(),
        "cycle.end",
        1,
        "before it starts",
        id="end-before-start",
    ),
    pytest.param(
        "cycle:\n  name: Q\n  start: 2026-10-01\n  end: 2026-12-31\n  timezone: Europe/Berlinn\n"
        "objectives:\n" + objective(),
        "cycle.timezone",
        5,
        "unknown timezone 'Europe/Berlinn'",
        id="bad-timezone",
    ),
    pytest.param(
        HEADER
        + objective().replace("target: 10\n", "target: 10\n        schedule: '61 * * * *'\n"),
        "objectives[0].key_results[0].schedule",
        11,
        "not a valid cron",
        id="bad-cron",
    ),
    pytest.param(
        HEADER + objective().replace("target: 10\n", "target: 10\n        schedule: '@daily x'\n"),
        "objectives[0].key_results[0].schedule",
        11,
        "5 cron fields",
        id="cron-field-count",
    ),
    pytest.param(
        HEADER + objective().replace("target: 10", "target: '+20 percent'"),
        "objectives[0].key_results[0].target",
        10,
        "'+20%'",
        id="bad-relative-target",
    ),
    pytest.param(
        HEADER + objective().replace("baseline: 0\n        target: 10", "target: '+20%'"),
        "objectives[0].key_results[0].baseline",
        7,
        "needs a baseline",
        id="relative-no-baseline",
    ),
    pytest.param(
        HEADER + objective().replace("target: 10", "target: 0"),
        "objectives[0].key_results[0].target",
        10,
        "target equals baseline",
        id="no-direction",
    ),
    pytest.param(
        HEADER + objective().replace("target: 10", "target: 10\n        kind: decrease"),
        "objectives[0].key_results[0].target",
        10,
        "decrease needs target < baseline",
        id="kind-contradicts",
    ),
    pytest.param(
        HEADER + objective().replace("target: 10", "target: 10\n        weight: 0"),
        "objectives[0].key_results[0].weight",
        11,
        "greater than 0",
        id="zero-weight",
    ),
    pytest.param(
        HEADER + objective().replace("baseline: 0", "baseline: lots"),
        "objectives[0].key_results[0].baseline",
        9,
        "number or 'auto'",
        id="bad-baseline",
    ),
    pytest.param(
        HEADER + objective().replace("id: k1", "id: 'k 1'"),
        "objectives[0].key_results[0].id",
        7,
        "not a valid id",
        id="bad-slug",
    ),
    pytest.param(
        HEADER + objective().replace("{type: sql, query: SELECT 1}", "{query: SELECT 1}"),
        "objectives[0].key_results[0].source.type",
        11,
        "needs a 'type'",
        id="source-no-type",
    ),
    pytest.param(
        HEADER + objective().replace("    owner: maya@example.com\n", ""),
        "objectives[0].owner",
        3,
        "missing required key 'owner'",
        id="missing-owner",
    ),
    pytest.param(
        HEADER
        + objective().replace("    owner: maya@example.com\n", "    owner: m\n    type: stretch\n"),
        "objectives[0].type",
        6,
        "'aspirational' or 'committed'",
        id="bad-type",
    ),
    pytest.param(
        HEADER
        + objective().replace(
            "    owner: maya@example.com\n", "    owner: m\n    success_level: 1.5\n"
        ),
        "objectives[0].success_level",
        6,
        "less than or equal to 1",
        id="bad-success-level",
    ),
    pytest.param(
        HEADER
        + objective(
            krs="      - id: up\n        title: Up\n        kind: at_least\n"
            "        target: 95\n        floor: 99\n"
            "        source: {type: sql}\n"
        ),
        "objectives[0].key_results[0].floor",
        11,
        "floor < target",
        id="at-least-floor",
    ),
]


@pytest.mark.parametrize(("text", "loc", "line", "words"), ERROR_TABLE)
def test_definition_errors(tmp_path: Path, text: str, loc: str, line: int, words: str) -> None:
    path = write(tmp_path, "q4.yaml", text)
    problems = problems_of(tmp_path)
    matching = [p for p in problems if p.loc == loc]
    assert matching, f"no problem at {loc!r}: {[str(p) for p in problems]}"
    problem = matching[0]
    assert problem.file == path
    assert problem.line == line, str(problem)
    assert words in problem.message
    assert str(problem).startswith(f"{path}:{line}: ")


def test_all_files_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "cycle: [\n")
    write(tmp_path, "sub/b.yml", HEADER + objective().replace("target: 10", "target: x"))
    write(tmp_path, "c.yaml", HEADER + objective("c", parent="nope"))
    files = {p.file.name if p.file else None for p in problems_of(tmp_path)}
    assert files == {"a.yaml", "b.yml", "c.yaml"}


def test_duplicate_objective_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + objective("growth"))
    second = write(tmp_path, "b.yaml", HEADER + objective("growth"))
    [problem] = problems_of(tmp_path)
    assert problem.file == second and problem.line == 3
    assert "already used in" in problem.message and "a.yaml:3" in problem.message


def test_unknown_parent_suggests_close_match(tmp_path: Path) -> None:
    write(tmp_path, "company.yaml", HEADER + objective("company-growth"))
    team = write(tmp_path, "team.yaml", HEADER + objective("team", parent="company-grwoth"))
    [problem] = problems_of(tmp_path)
    assert (problem.file, problem.loc, problem.line) == (team, "objectives[0].parent", 6)
    assert "did you mean 'company-growth'" in problem.message


def test_unknown_parent_lists_known(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + objective("alpha") + objective("beta", parent="zzz"))
    [problem] = problems_of(tmp_path)
    assert "no objective 'zzz'" in problem.message and "alpha" in problem.message


def test_parent_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + objective("a", parent="b") + objective("b", parent="a"))
    problems = problems_of(tmp_path)
    assert len(problems) == 1
    assert "loop" in problems[0].message and "a -> b -> a" in problems[0].message


def test_parent_across_files_loads(tmp_path: Path) -> None:
    write(tmp_path, "company.yaml", HEADER + objective("company"))
    write(tmp_path, "teams/search.yaml", HEADER + objective("search", parent="company"))
    okrs = load_okrs(tmp_path)
    assert {o.id: o.parent for _, o in okrs.objectives()} == {"company": None, "search": "company"}


def test_cycle_name_with_different_dates(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + objective("a"))
    other = "cycle: {name: 2026-Q4, start: 2026-10-02, end: 2026-12-31}\nobjectives:\n"
    b = write(tmp_path, "b.yaml", other + objective("b"))
    [problem] = problems_of(tmp_path)
    assert problem.file == b and problem.loc == "cycle" and "2026-10-02" in problem.message


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path)
    assert "no *.yaml or *.yml files" in problem.message
    [problem] = problems_of(tmp_path / "nope")
    assert "no such file or folder" in problem.message


def test_single_file_and_hidden_folders(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yml", HEADER + objective())
    write(tmp_path, ".okr/junk.yaml", "not: [valid")
    assert len(list(load_okrs(path).key_results())) == 2
    assert len(list(load_okrs(tmp_path).key_results())) == 2


def test_kr_count_warnings(tmp_path: Path) -> None:
    one = "      - id: k1\n        title: K\n        kind: milestone\n        source: {type: sql}\n"
    six = "".join(one.replace("k1", f"k{i}") for i in range(6))
    write(tmp_path, "a.yaml", HEADER + objective("solo", krs=one) + objective("busy", krs=six))
    okrs = load_okrs(tmp_path)
    messages = [(w.loc, w.message) for w in okrs.warnings]
    assert messages == [
        ("objectives[0].key_results", "objective 'solo' has 1 key result; OKR practice is 2-5"),
        ("objectives[1].key_results", "objective 'busy' has 6 key results; OKR practice is 2-5"),
    ]


class _SqlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    query: str
    connection: str = "default"


def _validate_source(raw: Any) -> None:
    if raw["type"] == "ga5":
        raise ConfigError("Unknown source type 'ga5'. Valid: http, sql.")
    if raw["type"] == "sql":
        _SqlConfig.model_validate(raw)


def test_validate_source_callback(tmp_path: Path) -> None:
    krs = (
        "      - id: ok\n        title: A\n        kind: milestone\n"
        "        source: {type: sql, query: SELECT 1}\n"
        "      - id: ga\n        title: B\n        kind: milestone\n"
        "        source: {type: ga5}\n"
        "      - id: bad\n        title: C\n        kind: milestone\n"
        "        source:\n          type: sql\n          quer: SELECT 1\n"
    )
    path = write(tmp_path, "q4.yaml", HEADER + objective(krs=krs))
    got = {(p.loc, p.line, p.message) for p in problems_of(path, validate_source=_validate_source)}
    assert got == {
        ("objectives[0].key_results[1].source", 14, "Unknown source type 'ga5'. Valid: http, sql."),
        ("objectives[0].key_results[2].source.query", 18, "missing required key 'query'"),
        ("objectives[0].key_results[2].source.quer", 20, "unknown key 'quer'"),
    }


def test_callback_receives_plain_types(tmp_path: Path) -> None:
    seen: list[Any] = []
    write(tmp_path, "a.yaml", HEADER + objective().replace("query: SELECT 1", "limit: 1.5, f: [1]"))
    load_okrs(tmp_path, validate_source=seen.append)
    assert seen[0] == {"type": "sql", "limit": 1.5, "f": [1]}
    assert type(seen[0]) is dict and type(seen[0]["limit"]) is float and type(seen[0]["f"]) is list


def test_decimals_are_exact(tmp_path: Path) -> None:
    krs = (
        "      - id: k\n        title: K\n        baseline: 0.1\n        target: 0.3\n"
        "        weight: 2.5\n        source: {type: sql}\n"
    )
    write(tmp_path, "a.yaml", HEADER + objective(krs=krs))
    [(_, _, kr)] = load_okrs(tmp_path).key_results()
    assert kr.baseline == Decimal("0.1") and kr.target == Decimal("0.3")
    assert kr.weight == Decimal("2.5")


def test_fingerprint_changes_with_bytes_and_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + objective())
    first = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == first == load_okrs(tmp_path).fingerprint
    (tmp_path / "a.yaml").rename(tmp_path / "b.yaml")
    renamed = fingerprint(tmp_path)
    assert renamed != first
    write(tmp_path, "b.yaml", HEADER + objective() + "\n")
    assert fingerprint(tmp_path) not in (first, renamed)


def test_definition_error_message_lists_problems(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "objectives: 3\n")
    with pytest.raises(DefinitionError) as info:
        load_okrs(tmp_path)
    text = str(info.value)
    assert text.startswith("2 problems in OKR definitions:")
    assert "a.yaml:1: cycle: missing required key 'cycle'" in text
    assert "objectives: expected a list" in text
    assert isinstance(info.value, ConfigError)


def test_validation_error_from_pydantic_is_not_raised(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + objective().replace("title: K1", "title: [1, 2]"))
    with pytest.raises(DefinitionError):
        load_okrs(tmp_path)
    with pytest.raises(ValidationError):  # the models themselves still raise pydantic errors
        from okr_pipeline.okr_core.definitions import CycleDef

        CycleDef.model_validate({"name": "Q", "start": "2026-10-02", "end": "2026-10-01"})


def test_textwrap_indented_yaml(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        cycle:
          name: 2027-Q1
          start: 2027-01-01
          end: 2027-03-31
        objectives:
          - id: uptime
            title: Be reliable
            owner: ops@example.com
            type: committed
            key_results:
              - id: availability
                title: 99.9% availability
                kind: at_least
                target: 99.9
                floor: 99
                source: {type: http, path: /slo}
              - id: launch
                title: Status page launched
                kind: milestone
                source: {type: http, path: /launched}
        """
    )
    write(tmp_path, "a.yaml", text)
    okrs = load_okrs(tmp_path)
    [(_, obj)] = okrs.objectives()
    assert obj.effective_success_level == 1.0
    assert obj.key_results[0].spec().floor == Decimal(99)
    assert obj.key_results[1].spec().kind == "milestone"


@pytest.mark.parametrize(
    ("target", "baseline", "expected"),
    [
        ("+20%", "200", "240"),
        ("-15%", "200", "170"),
        ("+5", "10", "15"),
        ("-2.5", "10", "7.5"),
        ("+10%", "-50", "-45"),  # percent of the size of the baseline
        (Decimal("3"), "10", "3"),
    ],
)
def test_resolve_target(target: Any, baseline: str, expected: str) -> None:
    from okr_pipeline.okr_core.definitions import resolve_target

    assert resolve_target(target, Decimal(baseline)) == Decimal(expected)


def test_lines_are_found_only_for_what_needs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid file is read without its line-keeping tree; a warning or problem builds it."""
    from okr_pipeline.okr_core import loader

    built: list[str] = []
    real = loader.load_tree
    monkeypatch.setattr(loader, "load_tree", lambda f, d: built.append(f.name) or real(f, d))
    one = "      - id: k1\n        title: K\n        kind: milestone\n        source: {type: sql}\n"
    write(tmp_path, "a.yaml", HEADER + objective("a"))
    write(tmp_path, "b.yaml", HEADER + objective("b") + objective("solo", krs=one))
    okrs = load_okrs(tmp_path)
    assert built == []  # nothing to place: no tree
    (warning,) = okrs.warnings
    assert built == ["b.yaml"]  # asked for: only that file's tree
    assert (warning.loc, warning.line) == ("objectives[1].key_results", 20)
    write(tmp_path, "a.yaml", HEADER + objective("a").replace("target: 10", "target: ten"))
    (problem,) = problems_of(tmp_path / "a.yaml")
    assert (problem.loc, problem.line) == ("objectives[0].key_results[0].target", 10)
    assert built[-1] == "a.yaml"
