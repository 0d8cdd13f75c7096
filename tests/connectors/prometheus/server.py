"""Start a real Prometheus (Debian's ``prometheus`` package) on loopback, scraping itself.

Each server gets a free port, its own storage folder and a config whose only job scrapes
the server itself every second, so ``up{job="prometheus"}`` and ``prometheus_build_info``
have samples a second or two after the start. :func:`start` returns once they do.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.ports import free_port

BINARY = "prometheus"
READY_SECONDS = 60.0
_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class PrometheusUnavailable(RuntimeError):
    """The binary is missing or the server did not come up; the message says which."""


@dataclass
class Prometheus:
    """A running server.

    Attributes:
        url: Its base URL, ``http://127.0.0.1:<port>``.
        first_sample: The time (unix seconds) of its first sample of ``up``, a moment at
            which the self-scrape series are known to exist.
        process: The server process.
        log: Its stderr, for the message when it fails.
    """

    url: str
    first_sample: Decimal
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, query: str, at: Decimal | None = None) -> Any:
        """The JSON answer of an instant query (for the tests' own checks).

        Args:
            query: PromQL.
            at: Evaluation time in unix seconds; now by default.

        Returns:
            The parsed answer.
        """
        params = {"query": query, **({"time": str(at)} if at is not None else {})}
        return _get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")

    def stop(self) -> None:
        """Stop the server and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def binary() -> str | None:
    """The path of the ``prometheus`` binary, or None when it is not installed."""
    return shutil.which(BINARY)


def start(folder: Path) -> Prometheus:
    """Start a server storing under ``folder`` and wait until it has scraped itself.

    Args:
        folder: An empty folder of the test's own.

    Returns:
        The running server.

    Raises:
        PrometheusUnavailable: No binary, or no samples within ``READY_SECONDS``.
    """
    path = binary()
    if path is None:
        raise PrometheusUnavailable(
            "the prometheus binary is not installed (Debian: apt-get install prometheus)"
        )
    # A free port can be taken between the check and the bind: try a few.
    last = ""
    for attempt in range(3):
        port = free_port()
        run = folder / f"run{attempt}"
        run.mkdir(parents=True)
        (run / "prometheus.yml").write_text(_CONFIG.format(port=port))
        log = run / "stderr.log"
        with log.open("wb") as err:
            process = subprocess.Popen(
                [
                    path,
                    f"--config.file={run / 'prometheus.yml'}",
                    f"--storage.tsdb.path={run / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        server = Prometheus(f"http://127.0.0.1:{port}", Decimal(0), process, log)
        try:
            server.first_sample = _wait_for_samples(server)
            return server
        except PrometheusUnavailable as exc:
            server.stop()
            last = str(exc)
    raise PrometheusUnavailable(last)


def _wait_for_samples(server: Prometheus) -> Decimal:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise PrometheusUnavailable(f"prometheus exited: {server.log.read_text()[-2000:]}")
        try:
            answer = server.query(
                'timestamp(up{job="prometheus"} == 1) and on() prometheus_build_info'
            )
        except (OSError, urllib.error.URLError):
            answer = None
        if answer is not None and answer["data"]["result"]:
            return Decimal(answer["data"]["result"][0]["value"][1])
        time.sleep(0.2)
    raise PrometheusUnavailable(
        f"no samples within {READY_SECONDS:g}s: {server.log.read_text()[-2000:]}"
    )


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read(), parse_float=Decimal)
