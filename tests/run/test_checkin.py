"""Check-ins and notes (run/checkin.py) and manual KRs in runs (run/manual.py).

Driven without Prefect, on SQLite and PostgreSQL stores, with a fixed clock: a check-in is
stored and scored at once, shows in the history as a check-in with its author and note,
and scheduled runs afterwards score it without copying it; every refused input leaves the
store exactly as it was.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.errors import DefinitionError
from okr_pipeline.okr_core.settings import Settings, load_settings
from okr_pipeline.okr_store.models import Base
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.checkin import CheckinError, add_note, record_checkin
from okr_pipeline.run.definitions import load_definitions
from okr_pipeline.run.update import RunRequest, run_update

# Mondays 09:00 UTC of 2026-Q4; the manual KRs expect a weekly check-in then.
OCT12, OCT19, OCT26 = (datetime(2026, 10, d, 9, tzinfo=UTC) for d in (12, 19, 26))
NOV2, NOV9, NOV16 = (datetime(2026, 11, d, 9, tzinfo=UTC) for d in (2, 9, 16))
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)  # the fixed clock

OKRS = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: team
    title: A happy team
    owner: lead@example.com
    key_results:
      - id: nps
        title: Employee NPS from 10 to 40
        baseline: 10
        target: 40
        schedule: "0 9 * * 1"
        source: {type: manual}
      - id: launch
        title: Pricing page live
        kind: milestone
        schedule: "0 9 * * 1"
        source: {type: manual}
  - id: growth
    title: Grow
    owner: pm@example.com
    key_results:
      - id: signups
        title: Signups from 100 to 200
        baseline: 100
        target: 200
        schedule: "0 9 * * 1"
        source:
          type: sql
          connection: warehouse
          query: "SELECT 150"
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def settings(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("OKR_") and not name.startswith("OKR_TEST_"):
            monkeypatch.delenv(name)
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q4.yaml").write_text(OKRS)
    sqlite3.connect(tmp_path / "wh.db").close()
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return load_settings(tmp_path, store_url=store_url)


@pytest.fixture
def store(settings: Settings) -> Any:
    opened = Store.open(settings.resolved_store_url())
    yield opened
    opened.close()


def run_at(settings: Settings, as_of: datetime, *, due_only: bool = False) -> Any:
    """A run as of ``as_of`` (every KR, or the due ones as on a schedule), clock at ``as_of``."""
    return run_update(
        RunRequest(project_dir=settings.project_dir, all_krs=not due_only, as_of=as_of),
        settings=settings,
        clock=lambda: as_of,
    )


def kr_id(store: Store, ref: str) -> int:
    return next(k.kr_id for k in store.active_key_results() if k.ref == ref)


def evaluations(store: Store, kr: int) -> dict[datetime, tuple[Decimal | None, str, str]]:
    table = Base.metadata.tables["evaluations"]
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.evaluated_at, table.c.value, table.c.status, table.c.reason).where(
                table.c.kr_id == kr
            )
        ).all()
    return {when: (value, status, reason) for when, value, status, reason in rows}


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a fixed order: what 'nothing changed' compares."""
    with store.engine.connect() as conn:
        return {
            name: sorted(
                (tuple(str(v) for v in row) for row in conn.execute(sa.select(table))),
            )
            for name, table in Base.metadata.tables.items()
        }


def checkin(settings: Settings, ref: str, value: str, as_of: datetime, **kw: Any) -> Any:
    kw.setdefault("author", "alice")
    return record_checkin(settings, ref, value, as_of=as_of, now=NOW, **kw)


# -- a check-in is a value like a measured one ---------------------------------------------


def test_checkin_changes_the_status_and_shows_in_history_as_a_checkin(
    settings: Settings, store: Store
) -> None:
    # The first check-in is taken on an empty store: the run syncs the files first.
    first = checkin(settings, "team/nps", "10", OCT26, note="pulse survey, 12 answers")
    assert (first.status, first.previous_status) == ("off_track", None)
    assert first.value == Decimal(10) and first.score == 0.0
    second = checkin(settings, "nps", "30.50", NOV2, author="bob", note="pulse survey 2")
    assert (second.previous_status, second.status) == ("off_track", "on_track")
    assert second.score == pytest.approx(0.6833, abs=1e-4)
    assert second.reason.startswith("pace only")

    nps = kr_id(store, "team/nps")
    history = store.kr_history(nps)
    assert [(h.as_of, h.value, h.kind, h.author, h.note) for h in history] == [
        (NOV2, Decimal("30.50"), "checkin", "bob", "pulse survey 2"),
        (OCT26, Decimal(10), "checkin", "alice", "pulse survey, 12 answers"),
    ]
    assert str(history[0].value) == "30.50"  # exact, as typed
    assert history[0].run_id == second.run_id
    runs = {r.id: r for r in store.runs()}
    assert runs[second.run_id].trigger == "checkin" and runs[second.run_id].total == 1
    row = next(r for r in store.latest_status() if r.ref == "team/nps")
    assert (row.status, row.value, row.evaluated_at) == ("on_track", Decimal("30.50"), NOV2)
    # Only the KR checked in was measured: the others have nothing yet.
    assert store.measurements([kr_id(store, "growth/signups")]) == []


def test_scheduled_runs_score_the_checkin_in_force_without_copying_it(
    settings: Settings, store: Store
) -> None:
    checkin(settings, "team/nps", "30", OCT26)
    for when in (NOV2, NOV9):
        summary = run_at(settings, when)
        assert {f"{r['objective']}/{r['id']}" for r in summary.rows} == {
            "team/nps", "team/launch", "growth/signups",
        }  # fmt: skip
    nps, launch, signups = (kr_id(store, r) for r in ("team/nps", "team/launch", "growth/signups"))
    # One measurement per check-in, none per run; the measured KR has one per run.
    assert [(m.as_of, m.kind) for m in store.measurements([nps])] == [(OCT26, "checkin")]
    assert [(m.as_of, m.kind) for m in store.measurements([signups])] == [
        (NOV2, "measured"), (NOV9, "measured"),
    ]  # fmt: skip
    assert store.measurements([launch]) == []
    # ... yet every run evaluated it with the value in force, pace moving on.
    scored = evaluations(store, nps)
    assert sorted(scored) == [OCT26, NOV2, NOV9]
    assert {value for value, _, _ in scored.values()} == {Decimal(30)}
    assert scored[NOV9][1] == "on_track"
    assert scored[NOV9][2] != scored[NOV2][2]  # the pace moved on
    nothing = evaluations(store, launch)[NOV9]
    assert nothing == (
        None, "no_data", "no check-in yet: record one with 'okr checkin team/launch VALUE'",
    )  # fmt: skip
    # Run again at the same as-of: still no copy, the same evaluation.
    run_at(settings, NOV9)
    assert len(store.measurements([nps])) == 1 and evaluations(store, nps) == scored
    # A run measures the manual KR on its schedule like any other: not due before Monday.
    assert run_at(settings, NOV9 + timedelta(days=1), due_only=True).measured == 0
    assert run_at(settings, NOV16, due_only=True).measured == 3


def test_nobody_checks_in_and_the_kr_goes_stale(settings: Settings, store: Store) -> None:
    checkin(settings, "team/nps", "30", OCT12)
    # Three Mondays missed after the check-in, the weekly KR is stale (stale_after_periods
    # = 3): Oct 19, 26 and Nov 2 before the run of Nov 9.
    assert next(r for r in run_at(settings, NOV2).rows if r["id"] == "nps")["status"] != "stale"
    row = next(r for r in run_at(settings, NOV9).rows if r["id"] == "nps")
    assert row["status"] == "stale"
    assert row["reason"].endswith("(last check-in as of 2026-10-12T09:00+00:00)")
    assert row["value"] == "30"  # the value in force is kept on the row
    states = store.alert_states([kr_id(store, "team/nps")])
    assert [kind for _, kind in states] == ["stale"]
    # A check-in brings it back.
    assert checkin(settings, "team/nps", "31", NOV16).status == "on_track"


def test_a_backdated_checkin_scores_the_later_as_ofs_again(
    settings: Settings, store: Store
) -> None:
    checkin(settings, "team/nps", "12", OCT12)
    run_at(settings, OCT26)
    nps = kr_id(store, "team/nps")
    assert evaluations(store, nps)[OCT26][0] == Decimal(12)
    # Entered late: the value as of Oct 19 is in force on Oct 26 too.
    late = checkin(settings, "team/nps", "25", OCT19, note="entered late")
    assert late.previous_status is not None
    scored = evaluations(store, nps)
    assert (scored[OCT19][0], scored[OCT26][0]) == (Decimal(25), Decimal(25))
    # Evaluated as if entered in time: the same as a run at Oct 26 now gives.
    before = scored[OCT26]
    run_at(settings, OCT26)
    assert evaluations(store, nps)[OCT26] == before
    # The same as-of again replaces the value; the old one is kept for audit only.
    checkin(settings, "team/nps", "26", OCT19, author="carol")
    assert [(m.value, m.author) for m in store.measurements([nps], at=OCT19)] == [
        (Decimal(26), "carol")
    ]
    with store.engine.connect() as conn:
        audit = conn.execute(
            sa.text("SELECT kind, author, note FROM superseded_measurements WHERE kr_id = :kr"),
            {"kr": nps},
        ).all()
    assert [tuple(row) for row in audit] == [("checkin", "alice", "entered late")]


def test_a_formula_reads_a_manual_kr(settings: Settings, store: Store) -> None:
    okrs = (
        OKRS
        + """\
      - id: doubled
        title: Twice the NPS
        baseline: 0
        target: 100
        schedule: "0 9 * * 1"
        source: {type: formula, expression: "[team/nps] * 2"}
"""
    )
    (settings.resolved_okr_path() / "q4.yaml").write_text(okrs)
    checkin(settings, "team/nps", "21.5", OCT26)
    row = next(r for r in run_at(settings, NOV2).rows if r["id"] == "doubled")
    assert row["value"] == "43"


def test_milestone_checkin(settings: Settings, store: Store) -> None:
    result = checkin(settings, "team/launch", "1", NOV2)
    assert (result.status, result.score) == ("on_track", 1.0)


def test_notes_on_any_kr(settings: Settings, store: Store) -> None:
    run_at(settings, NOV2)  # synced; notes on a measured KR and a manual one
    note = add_note(
        settings, "growth/signups", "campaign paused this week", author="dana", as_of=NOV9,
        now=NOW,
    )  # fmt: skip
    assert (note.ref, note.as_of, note.created_at, note.author) == (
        "growth/signups", NOV9, NOW, "dana",
    )  # fmt: skip
    add_note(settings, "nps", "  survey moved to Tuesday ", author="dana", now=NOW)
    signups, nps = kr_id(store, "growth/signups"), kr_id(store, "team/nps")
    assert [(n.kr_id, n.as_of, n.text) for n in store.notes()] == [
        (nps, NOW, "survey moved to Tuesday"),
        (signups, NOV9, "campaign paused this week"),
    ] or [(n.kr_id, n.as_of, n.text) for n in store.notes()] == [
        (signups, NOV9, "campaign paused this week"),
        (nps, NOW, "survey moved to Tuesday"),
    ]
    assert [n.text for n in store.notes([signups])] == ["campaign paused this week"]
    # A note changes no value and no status.
    assert store.measurements([signups], after=NOV2) == []


def test_a_kr_new_in_the_files_takes_notes_and_checkins_before_any_run(
    settings: Settings, store: Store
) -> None:
    run_at(settings, OCT26)
    okrs = OKRS.replace("      - id: launch", "      - id: morale\n        title: Morale\n"
                        "        baseline: 1\n        target: 5\n        source: {type: manual}\n"
                        "      - id: launch")  # fmt: skip
    (settings.resolved_okr_path() / "q4.yaml").write_text(okrs)
    assert add_note(settings, "team/morale", "first survey next week", author="e", now=NOW).id
    assert checkin(settings, "team/morale", "3", NOV2).status in ("on_track", "at_risk")


# -- refused input changes nothing ---------------------------------------------------------


REFUSED = [
    pytest.param(
        ("team/nps", "abc"),
        {},
        "value 'abc' for team/nps is not a number; give digits, e.g. 42 or -3.5",
        id="not-a-number",
    ),
    pytest.param(
        ("team/nps", "4 2"),
        {},
        "value '4 2' for team/nps is not a number; give digits, e.g. 42 or -3.5",
        id="two-numbers",
    ),
    pytest.param(
        ("team/launch", "done"),
        {},
        "value 'done' for team/launch is not a number; give digits, 1 when done, 0 when not",
        id="milestone-word",
    ),
    pytest.param(
        ("team/nps", "nan"),
        {},
        "value 'nan' for team/nps is not a number; give digits, e.g. 42 or -3.5",
        id="nan",
    ),
    pytest.param(
        ("team/nps", "1e30"),
        {},
        "value '1e30' for team/nps is out of the range this product stores (|value| < 1e+28)",
        id="too-large",
    ),
    pytest.param(
        ("team/npz", "30"),
        {},
        "no KR named 'team/npz'. Did you mean 'team/nps'?",
        id="unknown-kr",
    ),
    pytest.param(
        ("nsp", "30"),
        {},
        "no KR named 'nsp'. Known: 'growth/signups', 'team/launch', 'team/nps'.",
        id="unknown-bare-id",
    ),
    pytest.param(
        ("zzzzzz", "30"),
        {},
        "no KR named 'zzzzzz'. Known: 'growth/signups', 'team/launch', 'team/nps'.",
        id="few-known-listed",
    ),
    pytest.param(
        ("launc", "30"), {}, "no KR named 'launc'. Did you mean 'team/launch'?", id="bare-id-ref"
    ),
    pytest.param(
        ("team/nps", "30"),
        {"as_of": datetime(2026, 9, 30, 23, tzinfo=UTC)},
        "as-of 2026-09-30 23:00 UTC is outside team/nps's cycle 2026-Q4 (2026-10-01 to "
        "2026-12-31); give an as-of within it",
        id="before-the-cycle",
    ),
    pytest.param(
        ("team/nps", "30"),
        {"as_of": NOW + timedelta(days=1)},
        "as-of 2026-11-21 09:00 UTC is in the future (now 2026-11-20 09:00 UTC): a check-in "
        "records a value already known",
        id="future",
    ),
    pytest.param(
        ("growth/signups", "120"),
        {},
        "growth/signups is measured by its 'sql' source, so it takes no value by hand: add "
        "context with 'okr note growth/signups TEXT', or declare 'source: {type: manual}' to "
        "check its values in",
        id="not-manual",
    ),
    pytest.param(
        ("team/nps", "30"),
        {"author": "  "},
        "a check-in needs an author: pass --author NAME or set OKR_AUTHOR",
        id="no-author",
    ),
    pytest.param(
        ("team/nps", "30"),
        {"note": "x" * 2001},
        "the note is 2001 characters long; at most 2000",
        id="long-note",
    ),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), REFUSED)
def test_refused_checkins_leave_the_store_unchanged(
    settings: Settings, store: Store, args: tuple[str, str], kwargs: dict[str, Any], message: str
) -> None:
    checkin(settings, "team/nps", "20", OCT26, note="before")
    run_at(settings, NOV2)
    add_note(settings, "growth/signups", "kept", author="x", as_of=NOV2, now=NOW)
    before = snapshot(store)
    kwargs = {"author": "alice", "as_of": NOV9, **kwargs}
    with pytest.raises(CheckinError) as caught:
        record_checkin(settings, *args, now=NOW, **kwargs)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("ref", "text", "as_of", "message"),
    [
        ("team/npx", "x", NOV2, "no KR named 'team/npx'. Did you mean 'team/nps'?"),
        ("team/nps", " \n ", NOV2, "the note is empty: say what happened, e.g. 'campaign paused'"),
        (
            "growth/signups", "x", datetime(2027, 1, 1, tzinfo=UTC),
            "as-of 2027-01-01 00:00 UTC is in the future (now 2026-11-20 09:00 UTC): a check-in "
            "records a value already known",
        ),
        (
            "growth/signups", "x", datetime(2026, 1, 1, tzinfo=UTC),
            "as-of 2026-01-01 00:00 UTC is outside growth/signups's cycle 2026-Q4 (2026-10-01 to "
            "2026-12-31); give an as-of within it",
        ),
    ],
)  # fmt: skip
def test_refused_notes_leave_the_store_unchanged(
    settings: Settings, store: Store, ref: str, text: str, as_of: datetime, message: str
) -> None:
    run_at(settings, NOV2)
    before = snapshot(store)
    with pytest.raises(CheckinError) as caught:
        add_note(settings, ref, text, author="x", as_of=as_of, now=NOW)
    assert str(caught.value) == message
    assert snapshot(store) == before


def test_unsynced_files_are_checked_without_writing(settings: Settings, store: Store) -> None:
    # The files changed since the last run: the KR is looked up in them, nothing synced.
    run_at(settings, OCT26)
    path = settings.resolved_okr_path() / "q4.yaml"
    path.write_text(OKRS.replace("id: nps", "id: enps"))
    before = snapshot(store)
    with pytest.raises(CheckinError, match=r"no KR named 'team/nps'\. Did you mean 'team/enps'"):
        checkin(settings, "team/nps", "30", NOV2)
    assert snapshot(store) == before


def test_manual_kr_with_an_automatic_baseline_is_refused_at_load(settings: Settings) -> None:
    path = settings.resolved_okr_path() / "q4.yaml"
    path.write_text(
        OKRS.replace(
            "        baseline: 10\n", "        kind: increase\n        baseline: auto\n", 1
        )
    )
    with pytest.raises(DefinitionError) as caught:
        load_definitions(settings)
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{path}:10: objectives[0].key_results[0].baseline: a manual KR cannot measure "
        "'baseline: auto' (nobody checked in a value at the cycle's start); declare the "
        "baseline as a number"
    )
