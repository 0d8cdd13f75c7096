"""Many KRs' pages read at once (the report's) equal each KR's page read alone.

On the demo's store filled by a cycle of weekly runs, with a note, a silence and the alerts
the runs recorded; then again with the shown history and alerts capped low, so that the
per-KR limits of the bulk reads are exercised too.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from okr_pipeline.web import kr_detail as one_kr
from okr_pipeline.web import kr_details as many_krs
from okr_pipeline.web.kr_detail import UnknownKrError, kr_detail
from okr_pipeline.web.kr_details import kr_details
from okr_pipeline.web.queries import cycle_key_results
from tests.browser.served_demo import FilledDemo


@pytest.fixture(scope="module")
def annotated(web_demo: FilledDemo) -> FilledDemo:
    """The demo with a note on two KRs and a silence on one objective."""
    with web_demo.store() as store:
        rows = store.latest_status()
        first, second = rows[0], rows[-1]
        for row in (first, second):
            store.add_note(
                row.kr_id, web_demo.now, f"context for {row.kr_key}", "lee", web_demo.now
            )
        store.add_silence(
            second.objective_key, web_demo.now + timedelta(days=2), "holiday", web_demo.now
        )
    return web_demo


def _cycle_and_refs(demo: FilledDemo) -> tuple[str, list[str]]:
    with demo.store() as store:
        rows = store.latest_status()
    cycle = rows[0].cycle
    return cycle, sorted(row.ref for row in rows if row.cycle == cycle)


def test_each_page_read_in_bulk_equals_the_page_read_alone(annotated: FilledDemo) -> None:
    cycle, refs = _cycle_and_refs(annotated)
    now, settings = annotated.clock(), annotated.settings
    with annotated.store() as store:
        alone = [kr_detail(store, ref, cycle=cycle, settings=settings, now=now) for ref in refs]
        together = kr_details(store, refs, cycle=cycle, settings=settings, now=now)
        by_definition = kr_details(
            store, list(cycle_key_results(store, cycle).values()), settings=settings,
            cycle=cycle, now=now,
        )  # fmt: skip
    assert len(refs) >= 8
    for ref, expected, got in zip(refs, alone, together, strict=True):
        assert got == expected, ref
    assert sorted(by_definition, key=lambda d: d.row.ref) == alone
    # The demo exercises every part: history, evaluations, alerts, notes and silences.
    assert sum(1 for d in alone if d.history and d.evaluations) >= len(alone) - 1
    assert any(d.alerts for d in alone) and any(d.notes for d in alone)
    assert any(d.silences for d in alone) and any(d.alert_states for d in alone)


def test_the_per_kr_limits_hold_in_bulk(
    annotated: FilledDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (one_kr, many_krs):
        monkeypatch.setattr(module, "HISTORY_SHOWN", 2)
        monkeypatch.setattr(module, "ALERTS_SHOWN", 1)
    cycle, refs = _cycle_and_refs(annotated)
    now = annotated.clock()
    with annotated.store() as store:
        alone = [kr_detail(store, ref, cycle=cycle, now=now) for ref in refs]
        together = kr_details(store, refs, cycle=cycle, now=now)
    assert together == alone
    assert max(len(d.evaluations) for d in together) == 2
    assert max(len(d.alerts) for d in together) == 1


def test_an_unknown_ref_is_named(annotated: FilledDemo) -> None:
    cycle, refs = _cycle_and_refs(annotated)
    with annotated.store() as store, pytest.raises(UnknownKrError, match="no-such/kr"):
        kr_details(store, [refs[0], "no-such/kr"], cycle=cycle)
    with annotated.store() as store:
        assert kr_details(store, [], cycle=cycle) == []
