"""A local Prefect server for ``okr serve`` when no Prefect API is configured.

Prefect's temporary in-process server cannot run schedules, so serving a deployment needs
a real one. When the user has none (no ``PREFECT_API_URL``), ``okr serve`` starts
``prefect server start`` on 127.0.0.1 for as long as it runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from okr_core.errors import ConfigError

STARTUP_SECONDS = 120


def configured_api_url() -> str | None:
    """The Prefect API URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def local_prefect_server(port: int | None = None) -> Iterator[str]:
    """Run ``prefect server start`` on 127.0.0.1 for the duration of the block.

    Args:
        port: The port to listen on; a free one by default.

    Yields:
        The server's API URL (``http://127.0.0.1:PORT/api``).

    Raises:
        ConfigError: the server did not answer within two minutes.
    """
    port = port or _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(
                    f"could not start a local Prefect server on port {port}; start one with "
                    "'prefect server start' and set PREFECT_API_URL"
                )
            time.sleep(0.5)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
