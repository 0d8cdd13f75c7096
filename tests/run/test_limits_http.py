"""HTTP KRs against a local API with a quota: the connection's rate limit keeps every
request under it, so none is refused.

These tests talk to the live local server rather than a vcrpy cassette: what they check
is *when* requests arrive and how many are sent (the server counts them in a sliding
one-second window), and a cassette replays answers without time, so it could not refuse a
request sent too early; the requests carry no secret to filter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

from okr_pipeline.connectors.api_client import ApiCall, ApiClient, paced
from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.okr_core.redaction import Redactor
from okr_pipeline.okr_core.settings import ConnectionSettings
from okr_pipeline.run.fetch import FetchRequest, fetch_all
from tests.run.quota_api import http_sources, quota_api

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_300_http_krs_stay_under_a_quota_of_20_a_second() -> None:
    """300 KRs, a quota of 20 requests a second: no error, no 429, about 15 s."""
    with quota_api(quota=20) as server:
        env = SourceEnvironment(
            connections={
                "quota": ConnectionSettings(
                    url=f"http://127.0.0.1:{server.server_port}",
                    max_concurrency=4,
                    rate_limit_per_second=20,
                )
            }
        )
        requests = [
            FetchRequest(i, f"o/kr-{i}", source, NOW, NOW, NOW)
            for i, source in enumerate(http_sources(300))
        ]
        started = time.monotonic()
        results = fetch_all(requests, env, max_concurrency=8, clock=lambda: NOW)
        elapsed = time.monotonic() - started
    assert [r.error for r in results if not r.ok] == []
    assert [r.value for r in results] == [Decimal(i) for i in range(300)]
    assert server.refused == 0  # no 429 was ever sent: none was retried either
    assert server.answered == 300
    assert server.peak <= 20
    # The time goes to bench/bench_http.py; printed here for whoever runs it with -s.
    print(f"300 KRs at 20/s: {elapsed:.1f} s (the quota's floor: 15 s)")


def test_every_attempt_is_paced_retries_included() -> None:
    """A retried request takes a place in the window each time it is sent."""
    paced_attempts: list[int] = []

    @contextmanager
    def pacing() -> Iterator[None]:
        paced_attempts.append(1)
        yield

    with quota_api(quota=1000) as server:
        client = ApiClient(sleep=lambda seconds: None)  # no waiting between attempts
        call = ApiCall(
            method="GET",
            url=f"http://127.0.0.1:{server.server_port}/flaky",
            params={"kr": "3"},
            retries=2,
        )
        try:
            with paced(pacing):
                answer = client.send(call, where="KR o/k", redact=Redactor([]))
            unpaced = client.send(call, where="KR o/k", redact=Redactor([]))  # outside
        finally:
            client.close()
    assert answer.status == 200 and unpaced.status == 200
    assert len(paced_attempts) == 2  # the 503, then the retry that answered
    assert server.answered == 3  # and the one sent outside the block was not paced
