"""HTTP KRs against an API with a quota: how close the rate limit comes to the quota's floor.

    python bench/bench_http.py [--krs 1000] [--quota 100] [--concurrency 4] [--json]

Starts a local JSON API that answers 429 to any request above ``--quota`` in one second
(a sliding window), and fetches ``--krs`` HTTP KRs from it on a connection with
``rate_limit_per_second`` set to the quota and ``max_concurrency`` to ``--concurrency``,
each measurement in a fresh process:

- **local**: without a Prefect server, the process's own limits (``run/limits.py``);
- **prefect**: the limits shared through a Prefect server (``flows/limits.py``), started
  once beforehand and asked once (not timed: a fresh server's first request to a route
  costs about a second); timed from creating the limits, which creates the Prefect limit.

The floor is ``krs / quota`` seconds: no client can be faster without being refused. It
prints a table, or with ``--json`` one JSON object: ``krs``, ``quota_per_s``, ``floor_s``,
``local_s``, ``local_over_floor``, ``prefect_s``, ``prefect_over_floor``, and ``refused``
(429s the API sent over both, which must be 0) and ``errors``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the quota API lives with the tests that use it too

from tests.run.quota_api import http_sources, quota_api  # noqa: E402


def measure(mode: str, base_url: str, krs: int, quota: int, concurrency: int) -> None:
    """In a fresh process: fetch the KRs once and print seconds and errors as JSON."""
    from okr_pipeline.connectors.base import SourceEnvironment
    from okr_pipeline.okr_core.settings import ConnectionSettings
    from okr_pipeline.run.fetch import FetchRequest, fetch_all

    now = datetime.now(UTC)
    connections = {
        "quota": ConnectionSettings(
            url=base_url, max_concurrency=concurrency, rate_limit_per_second=quota
        )
    }
    requests = [
        FetchRequest(i, f"bench/kr-{i}", source, now, now, now)
        for i, source in enumerate(http_sources(krs))
    ]
    if mode == "prefect":
        from okr_pipeline.flows.limits import PrefectConnectionLimits
    started = time.perf_counter()
    # Timed: the limit is created and its slots taken through the Prefect API.
    limits = PrefectConnectionLimits(connections) if mode == "prefect" else None
    results = fetch_all(
        requests,
        SourceEnvironment(connections=connections),
        max_concurrency=max(8, concurrency),
        clock=lambda: now,
        limits=limits,
    )
    seconds = time.perf_counter() - started
    errors = sum(1 for r in results if not r.ok)
    print(json.dumps({"seconds": seconds, "errors": errors}))


def _run(
    mode: str, base_url: str, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--measure",
        mode,
        "--base-url",
        base_url,
        "--krs",
        str(args.krs),
        "--quota",
        str(args.quota),
        "--concurrency",
        str(args.concurrency),
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def _warm(api: str) -> None:
    """One request to the concurrency limits' routes: a fresh server's first costs ~1 s."""
    import httpx

    httpx.get(f"{api}/v2/concurrency_limits/bench-warm-up", timeout=60)


def main() -> None:
    """Run the bench (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--krs", type=int, default=1000, help="HTTP KRs to fetch")
    parser.add_argument("--quota", type=int, default=100, help="the API's requests a second")
    parser.add_argument("--concurrency", type=int, default=4, help="the connection's bound")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--measure", choices=["local", "prefect"], help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.base_url, args.krs, args.quota, args.concurrency)
        return

    from okr_pipeline.flows.prefect_server import local_prefect_server

    floor = args.krs / args.quota
    row: dict[str, float | int] = {"krs": args.krs, "quota_per_s": args.quota, "floor_s": floor}
    with contextlib.ExitStack() as stack, quota_api(args.quota) as server:
        base_url = f"http://127.0.0.1:{server.server_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        local = _run("local", base_url, args, env)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        env["PREFECT_HOME"] = str(work / "prefect-home")
        os.environ["PREFECT_HOME"] = env["PREFECT_HOME"]
        api = stack.enter_context(local_prefect_server())
        _warm(api)
        prefect = _run("prefect", base_url, args, {**env, "PREFECT_API_URL": api})
        row |= {
            "local_s": round(local["seconds"], 2),
            "local_over_floor": round(local["seconds"] / floor, 3),
            "prefect_s": round(prefect["seconds"], 2),
            "prefect_over_floor": round(prefect["seconds"] / floor, 3),
            "refused": server.refused,
            "errors": int(local["errors"] + prefect["errors"]),
        }
    if args.json:
        print(json.dumps(row))
        return
    print(f"{args.krs} HTTP KRs, quota {args.quota}/s, max_concurrency {args.concurrency}")
    print(f"  floor      {floor:7.2f} s")
    for mode in ("local", "prefect"):
        print(f"  {mode:<10} {row[f'{mode}_s']:7.2f} s   {row[f'{mode}_over_floor']:.3f} x floor")
    print(f"  429s sent by the API: {row['refused']}, KRs in error: {row['errors']}")


if __name__ == "__main__":
    main()
