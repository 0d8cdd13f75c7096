"""One run's fetch in a process of its own, its connection bounded through the Prefect API.

``python -m tests.flows.limits_run KIND URL COUNT`` prints ``ready`` once it could start,
waits for a line on its stdin (so that two such processes start fetching together), then
fetches ``COUNT`` KRs with the limits of the Prefect API named by ``PREFECT_API_URL``, and
prints one JSON line: when the fetch started and ended, and the errors. ``KIND`` is

- ``sql``: SQL KRs on the connection ``warehouse`` (``URL``, ``max_concurrency`` 4), on
  three threads;
- ``http``: HTTP KRs on the connection ``quota`` (base ``URL``, ``max_concurrency`` 4,
  ``rate_limit_per_second`` 20);
- ``hold``: no fetch; it takes ``COUNT`` slots of ``warehouse`` at once, prints ``held``
  and keeps them (renewing their leases) until its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.flows.limits import connection_limits
from okr_pipeline.okr_core.settings import ConnectionSettings, Settings
from okr_pipeline.run.fetch import FetchRequest, fetch_all
from tests.run.quota_api import http_sources

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
QUERY = "SELECT 1 FROM pg_sleep(0.01)"  # 10 ms each: a run lasts long enough to sample


def main(kind: str, url: str, count: int) -> None:
    """Fetch and print what happened (see the module's docstring)."""
    sources: list[dict[str, Any]]
    if kind == "hold":
        hold(url, count)
        return
    # Three threads a run, a bound of four: one run alone cannot fill the bound, two runs
    # without a shared limit would go over it (six sessions).
    threads = 3
    if kind == "sql":
        connections = {"warehouse": ConnectionSettings(url=url, max_concurrency=4)}
        sources = [{"type": "sql", "connection": "warehouse", "query": QUERY}] * count
    else:
        threads = 8
        connections = {
            "quota": ConnectionSettings(url=url, max_concurrency=4, rate_limit_per_second=20)
        }
        sources = http_sources(count)
    limits = connection_limits(Settings(connections=connections))
    requests = [FetchRequest(i, f"o/kr-{i}", s, NOW, NOW, NOW) for i, s in enumerate(sources)]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    results = fetch_all(
        requests,
        SourceEnvironment(connections=connections),
        max_concurrency=threads,
        clock=lambda: NOW,
        limits=limits,
    )
    ended = time.time()
    errors = [r.error for r in results if not r.ok]
    print(json.dumps({"started": started, "ended": ended, "errors": errors}), flush=True)


def hold(url: str, count: int) -> None:
    """Take ``count`` slots of ``warehouse`` and keep them until stdin closes."""
    connections = {"warehouse": ConnectionSettings(url=url, max_concurrency=4)}
    limits = connection_limits(Settings(connections=connections))
    assert limits is not None
    with contextlib.ExitStack() as held:
        for _ in range(count):
            held.enter_context(limits.slot("sql:warehouse"))
        print("held", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
