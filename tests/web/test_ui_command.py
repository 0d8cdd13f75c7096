"""``okr ui`` serves the dashboard for real (uvicorn, a free port); ``okr ui hash`` hashes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from okr_pipeline.web.auth import verify_secret
from tests.browser.served_demo import CHART_KR, FilledDemo
from tests.ports import free_port


def okr_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    return env


def test_ui_hash_reads_stdin_and_prints_a_line_for_env(tmp_path: Path):
    for args, name in (((), "OKR_UI__TOKEN_HASH"), (("--user", "alice"), "OKR_UI__USERS__ALICE")):
        done = subprocess.run(
            [sys.executable, "-m", "okr_pipeline", "ui", "hash", *args],
            input="a-long-enough-token\n",
            capture_output=True,
            text=True,
            env=okr_env(tmp_path),
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        key, _, value = done.stdout.strip().partition("=")
        assert key == name
        assert verify_secret("a-long-enough-token", value)
        assert "a-long-enough-token" not in done.stdout + done.stderr
        assert ".env" in done.stderr


def test_ui_hash_refuses_an_empty_secret(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "okr_pipeline", "ui", "hash"],
        input="\n",
        capture_output=True,
        text=True,
        env=okr_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Error: the token is empty" in done.stderr
    assert "Traceback" not in done.stderr


def start_ui(project: Path, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "okr_pipeline", "ui", "--project", str(project), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=okr_env(tmp_path),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "Dashboard at http://127.0.0.1:" in line, line + process.stderr.read()
    url = line.split("Dashboard at ", 1)[1].split("/ ", 1)[0]
    return process, url


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_okr_ui_on_port_0_serves_the_dashboard_on_the_port_it_prints(
    web_demo: FilledDemo, tmp_path: Path
):
    process, url = start_ui(web_demo.project, tmp_path, "--port", "0")
    try:
        port = int(url.rsplit(":", 1)[1])
        assert port > 0
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"{url}/healthz", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert answer.text == "ok"
        page = httpx.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and f'data-kr="{CHART_KR}"' in page.text
        assert httpx.get(f"{url}/static/chart.umd.min.js", timeout=30).status_code == 200
    finally:
        stop(process)


def test_okr_ui_on_a_busy_port_says_so_in_one_line(web_demo: FilledDemo, tmp_path: Path):
    import socket

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "okr_pipeline",
                "ui",
                "--port",
                str(port),
                "--project",
                str(web_demo.project),
            ],
            capture_output=True,
            text=True,
            env=okr_env(tmp_path),
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["ui", "--help"], ["serve", "--help"]])
def test_help_tells_how_to_start_it(tmp_path: Path, command: list[str]):
    done = subprocess.run(
        [sys.executable, "-m", "okr_pipeline", *command],
        capture_output=True,
        text=True,
        env={**okr_env(tmp_path), "COLUMNS": "200"},
        timeout=60,
        check=True,
    )
    assert ("--no-ui" in done.stdout) if command[0] == "serve" else ("--port" in done.stdout)
