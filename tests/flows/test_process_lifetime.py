"""Nothing okr starts outlives it: the temporary Prefect server dies with okr, SIGKILL too.

The temporary server is started by ``okr run --prefect`` (without the flag and with no
Prefect API configured, a run needs no server: tests/cli/test_run_modes.py).

The process tree is read from /proc (Linux): the children of a process, and the TCP
ports its sockets listen on. A flow run left Running by a killed okr is marked Crashed by
:func:`flows.prefect_server.mark_orphaned_flow_runs`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)"
)

OKR = [sys.executable, "-m", "okr_pipeline"]

OKRS = """\
cycle: {{name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
objectives:
  - id: growth
    title: Grow
    owner: o@example.com
    key_results:
      - id: signups
        title: Signups from 10 to 20
        baseline: 10
        target: 20
        source: {{type: sql, connection: warehouse, query: "{query}"}}
"""


# -- the process tree, from /proc ------------------------------------------------------


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces: the fields after it are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


def listening_ports(pid: int) -> set[int]:
    """The TCP ports that sockets of ``pid`` listen on."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def started_with(variable: str) -> set[int]:
    """The living processes whose environment holds ``variable`` (``NAME=value``).

    Everything okr starts inherits its environment, so a test's own ``PREFECT_HOME``
    names okr's processes even after they are re-parented, and never another test's.
    """
    needle = variable.encode() + b"\0"
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes() + b"\0"
            except OSError:
                continue
            if needle in environ and alive(int(entry.name)):
                found.add(int(entry.name))
    return found


def commands(pids: set[int]) -> dict[int, str]:
    """The command lines of ``pids``, for a failure's message."""
    found = {}
    for pid in pids:
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """No Prefect API configured: okr must start (and stop) a temporary server itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    return env


def make_project(folder: Path, warehouse_url: str, query: str) -> Path:
    (folder / "okrs").mkdir(parents=True)
    (folder / "okrs" / "q4.yaml").write_text(OKRS.format(query=query))
    (folder / ".env").write_text(
        f"OKR_CONNECTIONS__WAREHOUSE__URL={warehouse_url}\n"
        "OKR_CONNECTIONS__WAREHOUSE__TIMEOUT_SECONDS=300\n"
    )
    return folder


def start_okr(project: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*OKR, "run", "--all", "--prefect", "-p", str(project)], env=env, stdout=out, stderr=out
        )


def server_of(okr: subprocess.Popen[bytes], log: Path) -> tuple[int, int]:
    """The okr process's Prefect server child and the port it listens on."""
    found: list[tuple[int, int]] = []

    def listening_child() -> bool:
        assert okr.poll() is None, log.read_text()
        for child in descendants(okr.pid):
            ports = listening_ports(child)
            if ports:
                found.append((child, min(ports)))
                return True
        return False

    wait_for(listening_child, 240, "the Prefect server child to listen")
    return found[0]


# -- tests ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_sigkill_leaves_no_prefect_server_behind(
    tmp_path: Path, cli_env: dict[str, str], postgres_url: str, postgres_admin: sa.Engine
) -> None:
    database = sa.engine.make_url(postgres_url).database
    project = make_project(tmp_path / "project", postgres_url, "SELECT 12 FROM pg_sleep(300)")
    log = tmp_path / "okr.log"
    okr = start_okr(project, cli_env, log)
    try:
        server, port = server_of(okr, log)

        def kr_query_running() -> bool:
            assert okr.poll() is None, log.read_text()
            with postgres_admin.connect() as conn:
                return bool(
                    conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = :db AND query LIKE '%pg_sleep%'"
                        ),
                        {"db": database},
                    ).scalar()
                )

        # The flow run is Running and its KR query waits on the server: kill okr now.
        wait_for(kr_query_running, 240, "the KR's query to run")
        tree = descendants(okr.pid)
        home = f"PREFECT_HOME={cli_env['PREFECT_HOME']}"
        assert server in tree and accepts(port) and server in started_with(home)
        okr.send_signal(signal.SIGKILL)
        okr.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in tree), 10, f"okr's processes {tree} to end")
        # Not only the tree seen before the kill: a process okr started later, or one
        # re-parented since, still carries okr's environment. (The port is not checked
        # directly: once free, the suite may hand it to another test's server.)
        try:
            wait_for(lambda: not started_with(home), 10, "every process okr started to end")
        except AssertionError as timeout:
            left = commands(started_with(home))
            raise AssertionError(f"okr's processes outlive it: {left}") from timeout
    finally:
        if okr.poll() is None:
            okr.kill()
            okr.wait()


def test_a_finished_run_stops_its_server(
    tmp_path: Path, cli_env: dict[str, str], sqlite_url: str
) -> None:
    project = make_project(tmp_path / "project", sqlite_url, "SELECT 12")
    log = tmp_path / "okr.log"
    okr = start_okr(project, cli_env, log)
    try:
        server, _port = server_of(okr, log)
        assert okr.wait(timeout=300) == 0, log.read_text()
        # Once free, the port may go to another test's server: okr's processes are checked.
        assert not alive(server) and not started_with(f"PREFECT_HOME={cli_env['PREFECT_HOME']}")
        assert "measured 1 of 1 KRs" in log.read_text()
    finally:
        if okr.poll() is None:
            okr.kill()
            okr.wait()


def test_serve_server_dies_with_its_parent(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # The server 'okr serve' starts, in a parent of its own that the test kills.
    script = (
        "from okr_pipeline.flows.prefect_server import local_prefect_server\n"
        "import time\n"
        "with local_prefect_server() as url:\n"
        "    print(url, flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], env=cli_env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        url = parent.stdout.readline().strip()  # printed once the server answers
        assert url.startswith("http://127.0.0.1:"), url
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        tree = descendants(parent.pid)
        home = f"PREFECT_HOME={cli_env['PREFECT_HOME']}"
        assert tree and accepts(port) and tree <= started_with(home)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in tree), 15, "the server to end")
        wait_for(lambda: not started_with(home), 10, "every process it started to end")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_mark_orphaned_flow_runs(prefect_harness: None) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from okr_pipeline.flows.prefect_server import mark_orphaned_flow_runs

    @flow(name="okr-orphan-test")
    def nothing() -> None:
        return None

    with get_client(sync_client=True) as client:
        orphan = client.create_flow_run(nothing, state=Running())
        finished = client.create_flow_run(nothing, state=Completed())
        mark_orphaned_flow_runs(
            [str(orphan.id), str(finished.id), str(uuid.uuid4()), "not-a-flow-run-id"]
        )
        orphan_state = client.read_flow_run(orphan.id).state
        finished_state = client.read_flow_run(finished.id).state
    assert orphan_state is not None and orphan_state.is_crashed()
    assert "killed" in (orphan_state.message or "")
    assert finished_state is not None and finished_state.is_completed()


def test_mark_orphaned_flow_runs_tolerates_a_server_that_is_gone() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from okr_pipeline.flows.prefect_server import mark_orphaned_flow_runs
    from tests.ports import free_port

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        mark_orphaned_flow_runs([str(uuid.uuid4())])  # logs a warning, raises nothing


def test_a_command_that_fails_first_starts_no_server(
    tmp_path: Path, cli_env: dict[str, str], sqlite_url: str
) -> None:
    project = make_project(tmp_path / "project", sqlite_url, "SELECT 12")
    result = subprocess.run(
        [*OKR, "run", "--kr", "nope", "--prefect", "-p", str(project)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    # The server would have created its database in PREFECT_HOME on starting.
    assert not (Path(cli_env["PREFECT_HOME"]) / "prefect.db").exists()


def test_temporary_api_only_for_flow_commands_without_a_configured_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from okr_pipeline.flows.temporary_api import (
        _api_configured_elsewhere,
        _command,
        start_temporary_api,
    )

    assert _command(["--debug", "run", "--all"]) == "run"
    assert _command(["status", "-p", "x"]) == "status"
    assert _command([]) is None
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert not _api_configured_elsewhere()
    # Without --prefect, a flow command runs without Prefect: no server is set up.
    for argv in (["run", "--all"], ["backfill", "--from", "x"], ["demo"], ["status"]):
        assert start_temporary_api(argv) is None
    assert "PREFECT_API_URL" not in os.environ
    (tmp_path / "home").mkdir()
    profiles = tmp_path / "home" / "profiles.toml"
    profiles.write_text('active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://x/api"\n')
    assert _api_configured_elsewhere()  # the active profile names a server: use it
    profiles.write_text('active = "other"\n[profiles.mine]\nPREFECT_API_URL = "http://x/api"\n')
    assert not _api_configured_elsewhere()
    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://x/api"\n')
    assert _api_configured_elsewhere()
    (tmp_path / "prefect.toml").unlink()
    monkeypatch.setenv("PREFECT_API_URL", "http://y/api")
    assert _api_configured_elsewhere()
