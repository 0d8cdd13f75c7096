"""Benchmark: the shareable report (``okr report``) of a big cycle: time and size.

    python bench/bench_report.py [--krs 1000] [--as-ofs 8] [--json]

It builds the same store as ``bench_ui.py`` (one cycle, 5 KRs per objective, ``--as-ofs``
weekly runs with a measurement and an evaluation per KR, written straight into a SQLite
file in a temporary folder), then times ``web.report.build_report``: the overview and every
KR's page (read for all KRs at once, ``web.kr_details``, and rendered), assembled into one
document. It prints the time, the time per KR, the size of the HTML and the machine's load
average while it ran (other work on the machine slows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package

from bench_ui import build_store

from okr_pipeline.okr_store.store import Store
from okr_pipeline.web.report import build_report


def main() -> None:
    """Build the store, time the report, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--krs", type=int, default=1000, help="KRs in the cycle")
    parser.add_argument("--as-ofs", type=int, default=8, help="weekly runs stored per KR")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        build_store(url, args.krs, args.as_ofs, now)
        store = Store.open(url)
        try:
            started = time.perf_counter()
            report = build_report(store, now=now)
            seconds = time.perf_counter() - started
        finally:
            store.close()
    figures = {
        "krs": report.krs,
        "seconds": round(seconds, 2),
        "ms_per_kr": round(1000 * seconds / max(1, report.krs), 2),
        "megabytes": round(len(report.html.encode()) / 1e6, 1),
        "load": round(os.getloadavg()[0], 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"report of {figures['krs']} KRs: {figures['seconds']} s "
            f"({figures['ms_per_kr']} ms per KR), {figures['megabytes']} MB of HTML "
            f"(load average {figures['load']})"
        )


if __name__ == "__main__":
    main()
