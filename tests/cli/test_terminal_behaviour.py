"""The terminal as a new user meets it: validating one file, the demo's port and closing
lines, and the progress line of long commands (shown on a terminal, silent in pipes)."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from okr_pipeline.cli.progress import work_progress
from okr_pipeline.run.progress import report
from tests.cli.test_cli import assert_no_traceback, okr
from tests.ports import free_port

COMPANY = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: grow-listening
    title: Become the place people go to listen
    owner: ceo@example.com
    key_results:
      - id: listeners
        title: Listeners from 100 to 200
        baseline: 100
        target: 200
        source: {type: sql, connection: warehouse, query: "SELECT 120"}
"""

SUPPORT = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: support-excellence
    title: Support that listeners rave about
    owner: sam@example.com
    parent: grow-listening
    key_results:
      - id: tickets
        title: Tickets from 10 to 20
        baseline: 10
        target: 20
        source: {type: sql, connection: warehouse, query: "SELECT 12"}
      - id: per_listener
        title: Tickets per 100 listeners under 5
        baseline: 10
        target: 5
        source: {type: formula, expression: "tickets / [grow-listening/listeners] * 100"}
"""


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh Prefect home and no OKR_* settings leaking in (as in test_cli)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["COLUMNS"] = "80"
    return env


@pytest.fixture
def two_files(tmp_path: Path) -> Path:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "company.yaml").write_text(COMPANY)
    (tmp_path / "okrs" / "support.yaml").write_text(SUPPORT)
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return tmp_path


# -- okr validate FILE ----------------------------------------------------------------------


def test_validating_one_file_resolves_its_parent_and_formula_in_the_project(
    two_files: Path, cli_env: dict[str, str]
) -> None:
    result = okr("validate", "okrs/support.yaml", cwd=two_files, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no objective 'grow-listening'" not in result.stderr
    # Counts are the file's own.
    assert "1 file, 1 objective, 2 key results: valid" in result.stdout


def test_validating_one_file_lists_its_own_problems_only(
    two_files: Path, cli_env: dict[str, str]
) -> None:
    broken = COMPANY.replace("target: 200", "target: lots")
    (two_files / "okrs" / "company.yaml").write_text(broken)
    (two_files / "okrs" / "support.yaml").write_text(SUPPORT.replace("target: 20\n", "target: x\n"))
    result = okr("validate", "okrs/support.yaml", cwd=two_files, env=cli_env)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "support.yaml" in result.stderr
    assert "company.yaml" not in result.stderr
    assert "1 problem in" in result.stderr


def test_a_valid_file_beside_a_broken_one_is_valid(
    two_files: Path, cli_env: dict[str, str]
) -> None:
    broken = COMPANY.replace("target: 200", "target: lots")
    (two_files / "okrs" / "company.yaml").write_text(broken)
    alone = SUPPORT.replace("    parent: grow-listening\n", "").split("      - id: per_listener")[0]
    (two_files / "okrs" / "support.yaml").write_text(alone)
    result = okr("validate", "okrs/support.yaml", cwd=two_files, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "no problem of its own" in result.stdout
    assert "other files" in result.stdout
    # A reference into a broken file cannot be resolved: said, with where to look.
    (two_files / "okrs" / "support.yaml").write_text(SUPPORT)
    result = okr("validate", "okrs/support.yaml", cwd=two_files, env=cli_env)
    assert result.returncode == 1
    assert "1 problem in the project's other files" in " ".join(result.stderr.split())


def test_a_file_outside_the_project_is_validated_on_its_own(
    two_files: Path, tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "alone.yaml"
    elsewhere.write_text(COMPANY)
    result = okr("validate", str(elsewhere), cwd=two_files, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "1 file, 1 objective, 1 key result: valid" in result.stdout


# -- okr demo: its port, no half-built folder, its closing lines ---------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_demo_on_a_busy_port_writes_nothing(
    busy_port: int, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    result = okr("demo", "demo", "--port", str(busy_port), cwd=tmp_path, env=cli_env)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert f"127.0.0.1:{busy_port}" in result.stderr and "nothing was written" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_demo_takes_a_free_port_when_the_default_is_busy(
    tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from okr_pipeline.demo import project as demo_project

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = int(sock.getsockname()[1])
        monkeypatch.setattr(demo_project, "DEFAULT_PORT", taken)
        server = demo_project.bind_api(tmp_path / "warehouse.db", "t", None)
        try:
            assert server.server_address[1] not in (taken, 0)
        finally:
            server.server_close()
    assert list(tmp_path.iterdir()) == []


def test_demo_that_fails_half_way_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from okr_pipeline.demo import project as demo_project

    def broken_backfill(start: object, now: object) -> list[object]:
        raise RuntimeError("interrupted while backfilling")

    monkeypatch.setattr(demo_project, "backfill_times", broken_backfill)
    console = Console(file=io.StringIO())
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        demo_project.demo_running(tmp_path / "demo", port=free_port(), console=console),
    ):
        pass
    assert not (tmp_path / "demo").exists()
    # An empty folder named for the demo stays, emptied again.
    (tmp_path / "empty").mkdir()
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        demo_project.demo_running(tmp_path / "empty", port=free_port(), console=console),
    ):
        pass
    assert (tmp_path / "empty").is_dir() and list((tmp_path / "empty").iterdir()) == []


def test_demo_works_with_its_default_port_busy_and_says_where_to_look(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """The whole demo, as a new user runs it, while something holds the API's port."""
    from okr_pipeline.demo.project import DEFAULT_PORT

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", DEFAULT_PORT))
            sock.listen()
        except OSError:
            pass  # something else holds it already: busy all the same
        result = okr("demo", "demo", cwd=tmp_path, env=cli_env, timeout=600)
    assert result.returncode in (0, 3), result.stdout + result.stderr
    assert_no_traceback(result)
    out = result.stdout
    assert "okr ui" in out and "http://127.0.0.1:8400" in out
    assert "okr report" in out
    assert "okr status" in out
    # No progress noise when not on a terminal.
    assert "starting Prefect" not in out + result.stderr
    assert "fetching" not in out + result.stderr
    assert (tmp_path / "demo" / ".okr" / "okr.db").is_file()
    env_file = (tmp_path / "demo" / ".env").read_text()
    assert "OKR_CONNECTIONS__ANALYTICS__URL=http://127.0.0.1:" in env_file
    assert f"127.0.0.1:{DEFAULT_PORT}" not in env_file


# -- the progress line -------------------------------------------------------------------


def test_progress_shows_the_run_phases_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with work_progress(console, enabled=True) as progress:
        progress.step("measuring")
        with progress.flow_run():
            report("fetching 8 KRs")
            progress._live.refresh()  # type: ignore[union-attr]
        progress.step("as of 2026-10-01", 3, 12)
        progress._live.refresh()  # type: ignore[union-attr]
    text = out.getvalue()
    assert "measuring · fetching 8 KRs" in text
    assert "as of 2026-10-01 (3/12)" in text


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with work_progress(console) as progress:
        progress.step("measuring")
        with progress.flow_run():
            report("fetching 8 KRs")
        progress.console.print("the output")
    assert out.getvalue() == "the output\n"


def test_a_listener_that_fails_never_fails_the_run() -> None:
    from okr_pipeline.run.progress import listening

    def broken(phase: str, done: int, total: int | None) -> None:
        raise ValueError(phase)

    with listening(broken):
        report("fetching 1 KR")  # no exception


def _on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a pseudo-terminal; its exit code and text."""
    import pty
    import subprocess
    import sys
    import time

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "okr_pipeline", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "120", "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal (EIO on Linux)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = process.wait(timeout=60)
    return code, b"".join(chunks).decode(errors="replace")


def test_run_on_a_terminal_shows_a_bar_of_the_krs_fetched(
    demo_project: Path, cli_env: dict[str, str]
) -> None:
    import re

    from okr_pipeline.okr_core.settings import load_settings
    from okr_pipeline.run.record import open_store

    code, text = _on_a_terminal(["run", "--all"], demo_project, cli_env)
    assert code in (0, 3), text
    store = open_store(load_settings(demo_project))
    try:  # every KR but the formulas (computed from the others) is fetched
        fetched = sum(1 for kr in store.active_key_results() if kr.source.get("type") != "formula")
    finally:
        store.close()
    counts = re.findall(r"fetching (\d+)/(\d+) KRs", text)
    assert counts, text[-2000:]
    assert {int(total) for _, total in counts} == {fetched}
    assert (str(fetched), str(fetched)) in counts  # the bar ends full
    assert "━" in text  # drawn as a bar
    # Piped, the same run shows no progress at all.
    piped = okr("run", "--all", cwd=demo_project, env=cli_env)
    assert "fetching" not in piped.stdout + piped.stderr
