"""Exact decimals and aware UTC timestamps survive a round trip on every backend."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_store.models import Base
from okr_pipeline.okr_store.types import ExactDecimal, UtcDateTime

from .conftest import kr, objective, okr_set

DECIMALS = [
    Decimal("0.1") + Decimal("0.2"),
    Decimal("12345678901234.123456789"),
    Decimal("-0.000000000000000001"),
    Decimal("1E+30"),
    Decimal("0"),
    Decimal("42"),
]

probe = sa.Table(
    "probe",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("d", ExactDecimal()),
    sa.Column("t", UtcDateTime()),
)


@pytest.fixture
def probe_engine(engine: sa.Engine) -> sa.Engine:
    probe.create(engine)
    return engine


def test_decimals_round_trip_exactly(probe_engine: sa.Engine) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. SQLAlchemy's "Decimal objects not supported"
        with probe_engine.begin() as conn:
            conn.execute(sa.insert(probe), [{"d": d} for d in DECIMALS])
        with probe_engine.connect() as conn:
            got = conn.execute(sa.select(probe.c.d).order_by(probe.c.id)).scalars().all()
    assert got == DECIMALS
    assert all(isinstance(value, Decimal) for value in got)
    assert str(got[0]) == "0.3"
    assert got[1] == Decimal("12345678901234.123456789")


@pytest.mark.parametrize(
    ("value", "error"),
    [(0.3, TypeError), ("0.3", TypeError), (True, TypeError), (Decimal("NaN"), ValueError)],
)
def test_inexact_decimals_are_refused(probe_engine: sa.Engine, value: object, error: type) -> None:
    with pytest.raises(sa.exc.StatementError) as info, probe_engine.begin() as conn:
        conn.execute(sa.insert(probe).values(d=value))
    assert isinstance(info.value.orig, error)


def test_timestamps_come_back_aware_utc(probe_engine: sa.Engine) -> None:
    berlin_summer = datetime(2026, 7, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    utc = datetime(2026, 1, 1, tzinfo=UTC)
    with probe_engine.begin() as conn:
        conn.execute(sa.insert(probe), [{"t": berlin_summer}, {"t": utc}])
    with probe_engine.connect() as conn:
        got = conn.execute(sa.select(probe.c.t).order_by(probe.c.id)).scalars().all()
        # Comparisons in SQL see the same instant whatever zone the parameter is in.
        later = conn.execute(
            sa.select(sa.func.count()).where(probe.c.t > datetime(2026, 7, 1, 12, 30, tzinfo=UTC))
        ).scalar()
    assert got == [berlin_summer, utc]
    assert all(value.tzinfo == UTC for value in got)
    assert got[0].hour == 12
    assert later == 1


def test_naive_timestamps_are_refused(probe_engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"), probe_engine.begin() as conn:
        conn.execute(sa.insert(probe).values(t=datetime(2026, 1, 1)))


def test_store_keeps_definition_decimals_exact(store) -> None:
    store.sync_definitions(
        okr_set(
            [
                objective(
                    "o",
                    [
                        kr("a", baseline="0.1", target="12345678901234.123456789", weight="0.3"),
                        kr("b", baseline=10, target="+0.2", kind="increase"),
                    ],
                )
            ]
        )
    )
    a, b = store.active_key_results()
    assert (a.baseline, a.target_value, a.weight) == (
        Decimal("0.1"),
        Decimal("12345678901234.123456789"),
        Decimal("0.3"),
    )
    assert b.target_value == Decimal("10.2")
    assert a.cycle_start == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert a.cycle_end.tzinfo == UTC


def test_schema_has_no_float_for_values() -> None:
    # Values, baselines and targets must never be floats anywhere in the schema.
    for table in Base.metadata.tables.values():
        if table.name == "meta":
            continue
        for name in ("value", "baseline", "target_value", "floor", "weight", "forecast_value"):
            if name in table.c:
                assert isinstance(table.c[name].type, ExactDecimal), f"{table.name}.{name}"
