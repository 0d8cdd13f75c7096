"""okr's flows record their parameters as Prefect would, without importing FastAPI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.encoders import jsonable_encoder
from hypothesis import given
from hypothesis import strategies as st
from prefect import Flow

from okr_pipeline.flows.parameters import NotPlain, PlainParameterFlow, plain_json
from okr_pipeline.flows.shards import measure_shard
from okr_pipeline.flows.update import update_key_results

AS_OF = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)

_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times()
    | st.uuids()
)
_plain = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_plain)
def test_plain_values_are_written_as_fastapi_writes_them(value: Any) -> None:
    assert plain_json(value) == jsonable_encoder(value)


@pytest.mark.parametrize(
    "value",
    [Path("okrs/growth.yaml"), datetime(2026, 11, 26, 9, 30, tzinfo=timezone(timedelta(hours=-5)))],
)
def test_paths_and_offsets_too(value: Any) -> None:
    assert plain_json(value) == jsonable_encoder(value)


@pytest.mark.parametrize("value", [Decimal("1.5"), {1: "a"}, {"a"}, b"bytes", timedelta(days=1)])
def test_other_values_are_not_plain(value: Any) -> None:
    with pytest.raises(NotPlain):
        plain_json(value)


@pytest.mark.parametrize("flow", [update_key_results, measure_shard])
def test_okrs_flows_are_plain_parameter_flows(flow: Flow[..., Any]) -> None:
    assert isinstance(flow, PlainParameterFlow)


def test_a_runs_parameters_are_recorded_as_prefect_records_them() -> None:
    parameters = {
        "project_dir": "/srv/okrs",
        "kr": ["growth/signups", "17"],
        "as_of": AS_OF,
        "dry_run": False,
        "all_krs": True,
        "backfill": False,
        "replace_existing": False,
        "allow_future": False,
        "shards": 4,
    }
    ours = update_key_results.serialize_parameters(parameters)
    assert ours == Flow.serialize_parameters(update_key_results, parameters)
    assert ours["as_of"] == "2026-11-26T09:30:00+00:00"


def test_a_value_that_is_not_plain_is_left_to_prefect() -> None:
    parameters = {"project_dir": ".", "shards": Decimal("2"), "kr": None}
    ours = update_key_results.serialize_parameters(parameters)
    assert ours == Flow.serialize_parameters(update_key_results, parameters)
    assert ours["shards"] == 2  # FastAPI's encoding, not ours: plain_json refuses a Decimal


def test_recording_the_parameters_does_not_import_fastapi() -> None:
    code = (
        "import json, sys\n"
        "from datetime import datetime, timezone\n"
        "from okr_pipeline.flows.update import update_key_results\n"
        "written = update_key_results.serialize_parameters(\n"
        "    {'project_dir': '.', 'as_of': datetime(2026, 11, 26, tzinfo=timezone.utc)})\n"
        "print(json.dumps({'written': written, 'fastapi': 'fastapi' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "written": {"project_dir": ".", "as_of": "2026-11-26T00:00:00+00:00"},
        "fastapi": False,
    }


def test_dates_and_times_alone() -> None:
    assert plain_json([date(2026, 11, 26), time(9, 30)]) == ["2026-11-26", "09:30:00"]
    assert plain_json(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
