"""A run driven without Prefect: the steps of ``okr_pipeline.run`` as plain calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.update import RunRequest, Steps, run_update

# Runs the whole update in a fresh interpreter and reports what it imported.
PLAIN_RUN = """
import json, sys
from pathlib import Path
from okr_pipeline.run.update import RunRequest, run_update
summary = run_update(RunRequest(project_dir=Path(sys.argv[1]), all_krs=True))
prefect = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
print(json.dumps({"measured": summary.measured, "errors": summary.errors,
                  "run_id": summary.run_id, "prefect": prefect[:5]}))
"""


def test_a_whole_run_needs_no_prefect(demo_project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_RUN, str(demo_project)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["prefect"] == [], "a plain run imported Prefect"
    assert report["errors"] == 0
    assert report["measured"] >= 5
    store = Store.open(f"sqlite:///{demo_project / '.okr' / 'okr.db'}")
    try:
        (run,) = store.runs(5)
        assert run.id == report["run_id"]
        assert run.status == "completed"
        assert run.ok == report["measured"]
    finally:
        store.close()


def test_a_driver_wraps_every_step(demo_project: Path) -> None:
    """What the Prefect flow does with tasks, any driver can do: each step goes through it."""
    calls: list[str] = []
    plain = Steps()

    def traced(name: str, step: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return step(*args, **kwargs)

        return call

    published: list[Any] = []
    steps = Steps(
        load=traced("load", plain.load),
        baselines=traced("baselines", plain.baselines),
        fetch=traced("fetch", plain.fetch),
        evaluate_and_store=traced("evaluate_and_store", plain.evaluate_and_store),
        alerts=traced("alerts", plain.alerts),
        publish=published.append,
        mark_crashed=traced("mark_crashed", lambda ids: None),
    )
    summary = run_update(RunRequest(project_dir=demo_project, all_krs=True), steps=steps)
    assert calls == [
        "mark_crashed",
        "load",
        "baselines",
        "fetch",
        "evaluate_and_store",
        "alerts",
    ]
    assert published == [summary]
    assert summary.measured >= 5 and summary.errors == 0
    # A dry run stores nothing, so it leaves no crashed runs to close either.
    calls.clear()
    dry = run_update(RunRequest(project_dir=demo_project, all_krs=True, dry_run=True), steps=steps)
    assert dry.run_id is None
    assert "mark_crashed" not in calls
    # The first run measured the demo's auto baseline: with none left to measure, there
    # is no baselines step (under Prefect, no task run) at all.
    assert "baselines" not in calls and "fetch" in calls


def test_a_plain_run_tells_how_many_krs_are_fetched(demo_project: Path) -> None:
    """The CLI's bar listens to run.progress: a run without Prefect counts its fetch too."""
    from okr_pipeline.run.progress import listening

    told: list[tuple[str, int, int | None]] = []
    with listening(lambda phase, done, total: told.append((phase, done, total))):
        summary = run_update(RunRequest(project_dir=demo_project, all_krs=True))
    counted = [(phase, done, total) for phase, done, total in told if total is not None]
    assert counted, told
    total = counted[0][2]
    assert total is not None and 0 < total <= summary.measured + summary.errors
    assert counted[0] == (f"fetching 0/{total} KRs", 0, total)
    assert counted[-1] == (f"fetching {total}/{total} KRs", total, total)
