"""Which KRs a run measures: due by their cron schedule, or named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_store.records import StoredKeyResult
from okr_pipeline.run.select import is_due, resolve_name, select_key_results

T = datetime(2026, 11, 24, 10, 29, tzinfo=UTC)


def kr(objective: str, key: str, kr_id: int, **changes: object) -> StoredKeyResult:
    base = StoredKeyResult(
        kr_id=kr_id,
        ref=f"{objective}/{key}",
        cycle="2026-Q4",
        objective_key=objective,
        kr_key=key,
        title=key,
        unit="",
        owner="o@example.com",
        objective_type="aspirational",
        success_level=0.7,
        cycle_start=T - timedelta(days=50),
        cycle_end=T + timedelta(days=40),
        kind="increase",
        baseline=Decimal(0),
        baseline_auto=False,
        target="10",
        target_value=Decimal(10),
        floor=None,
        weight=Decimal(1),
        schedule="0 * * * *",
        source={"type": "sql"},
        source_type="sql",
        last_as_of=None,
        last_good_as_of=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedule", "last", "due"),
    [
        ("0 * * * *", None, True),  # never measured
        ("0 * * * *", T - timedelta(minutes=20), False),  # 10:09 → next 11:00
        ("0 * * * *", T - timedelta(minutes=31), True),  # 09:58 → fired at 10:00
        ("0 6 * * *", T - timedelta(hours=3), False),  # 07:29 today → next 06:00 tomorrow
        ("0 6 * * *", T - timedelta(hours=25), True),  # 09:29 yesterday → fired at 06:00
        ("*/15 * * * *", T - timedelta(minutes=5), False),  # 10:24 → next 10:30
        ("*/15 * * * *", T - timedelta(minutes=16), True),  # 10:13 → fired at 10:15
    ],
)
def test_is_due(schedule: str, last: datetime | None, due: bool) -> None:
    assert is_due(schedule, last, T) is due


def test_due_only_selects_due_krs() -> None:
    krs = [kr("o", "a", 1), kr("o", "b", 2, last_as_of=T - timedelta(minutes=5))]
    assert [k.kr_id for k in select_key_results(krs, as_of=T)] == [1]
    assert [k.kr_id for k in select_key_results(krs, as_of=T, due_only=False)] == [1, 2]


def test_names_pick_exactly_those_due_or_not() -> None:
    krs = [
        kr("o", "a", 1, last_as_of=T),
        kr("o", "b", 2),
        kr("p", "a", 3),
        kr("p", "c", 4),
    ]
    chosen = select_key_results(krs, as_of=T, names=["o/a", "c", "o/a"])
    assert [k.kr_id for k in chosen] == [1, 4]


def test_ambiguous_and_unknown_names_are_clear_errors() -> None:
    krs = [kr("o", "a", 1), kr("p", "a", 2)]
    with pytest.raises(ConfigError, match="several objectives; name one of: o/a, p/a"):
        resolve_name("a", krs)
    with pytest.raises(ConfigError, match="No key result named 'zzz'"):
        resolve_name("zzz", krs)


def test_an_unknown_name_gets_the_shared_hint() -> None:
    krs = [kr("growth", "signups", 1), kr("growth", "revenue", 2)]
    with pytest.raises(ConfigError) as caught:
        resolve_name("growth/signup", krs)
    assert str(caught.value) == (
        "No key result named 'growth/signup'. Did you mean 'growth/signups'? "
        "'okr status' lists them."
    )
