"""Property tests: the scoring math and the loader hold for any input."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from okr_pipeline.okr_core.errors import DefinitionError
from okr_pipeline.okr_core.loader import OkrSet, load_okrs
from okr_pipeline.okr_core.scoring import (
    PROGRESS_LIMIT,
    Kind,
    KrSpec,
    Status,
    evaluate,
    progress,
    score,
)

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)

numbers = st.decimals(
    min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=4
)
kinds: st.SearchStrategy[Kind] = st.sampled_from(
    ["increase", "decrease", "at_least", "at_most", "milestone"]
)
moments = st.datetimes(
    min_value=datetime(2026, 9, 1), max_value=datetime(2027, 2, 1), timezones=st.just(UTC)
)


@st.composite
def specs(draw: st.DrawFn) -> KrSpec:
    kind = draw(kinds)
    baseline = draw(numbers)
    target = draw(numbers.filter(lambda t: t != baseline))
    floor = draw(st.none() | numbers)
    return KrSpec(kind=kind, baseline=baseline, target=target, floor=floor)


@given(specs(), numbers)
def test_score_always_in_unit_interval(spec: KrSpec, value: Decimal) -> None:
    assert 0.0 <= score(spec, value) <= 1.0


@given(numbers, numbers, st.fractions(min_value=-2, max_value=3))
def test_progress_formula_both_directions(baseline: Decimal, target: Decimal, share: Any) -> None:
    if baseline == target:
        return
    value = baseline + (target - baseline) * Decimal(share.numerator) / Decimal(share.denominator)
    assert abs(progress(value, baseline, target) - float(share)) < 1e-6
    kind: Kind = "increase" if target > baseline else "decrease"
    clamped = min(1.0, max(0.0, float(share)))
    assert abs(score(KrSpec(kind, baseline, target), value) - clamped) < 1e-6


@given(
    specs(),
    moments,
    st.lists(st.tuples(moments, numbers), max_size=20),
    st.floats(min_value=0.1, max_value=1.0),
)
def test_kr_at_target_is_never_off_track(
    spec: KrSpec, at: datetime, history: list[tuple[datetime, Decimal]], level: float
) -> None:
    target = Decimal(1) if spec.kind == "milestone" else spec.target
    result = evaluate(
        spec,
        target,
        history=sorted(history),
        at=at,
        cycle_start=START,
        cycle_end=END,
        success_level=level,
    )
    assert result.status is Status.ON_TRACK
    assert result.score == 1.0


@given(specs(), moments, st.lists(st.tuples(moments, numbers), max_size=20))
def test_no_value_is_never_scored(
    spec: KrSpec, at: datetime, history: list[tuple[datetime, Decimal]]
) -> None:
    result = evaluate(
        spec,
        None,
        history=sorted(history),
        at=at,
        cycle_start=START,
        cycle_end=END,
        success_level=0.7,
    )
    assert result.status is Status.NO_DATA
    assert (result.score, result.progress, result.forecast_score) == (None, None, None)


# Any finite decimal, far beyond the default context's exponents (Emax 999999): huge,
# tiny, and ordinary ones mixed, so that differences of very unlike numbers are drawn too.
extreme = st.builds(
    lambda sign, coefficient, exponent: Decimal(f"{sign}{coefficient}e{exponent}"),
    st.sampled_from(["", "-"]),
    st.integers(min_value=0, max_value=10**30),
    st.integers(min_value=-(2 * 10**9), max_value=2 * 10**9)
    | st.integers(min_value=-1_100_000, max_value=1_100_000)
    | st.integers(min_value=-10, max_value=10),
)


@st.composite
def extreme_specs(draw: st.DrawFn) -> KrSpec:
    kind = draw(kinds)
    baseline = draw(extreme)
    target = draw(extreme.filter(lambda t: t != baseline))
    return KrSpec(kind=kind, baseline=baseline, target=target, floor=draw(st.none() | extreme))


@settings(max_examples=300, deadline=None)
@given(
    extreme_specs(),
    extreme,
    moments,
    st.lists(st.tuples(moments, extreme), max_size=12),
    st.floats(min_value=0.1, max_value=1.0),
)
def test_extreme_values_never_raise(
    spec: KrSpec,
    value: Decimal,
    at: datetime,
    history: list[tuple[datetime, Decimal]],
    level: float,
) -> None:
    result = evaluate(
        spec,
        value,
        history=sorted(history),
        at=at,
        cycle_start=START,
        cycle_end=END,
        success_level=level,
    )
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.progress is not None and abs(result.progress) <= PROGRESS_LIMIT
    for number in (result.forecast_value, result.forecast_low, result.forecast_high):
        assert number is None or math.isfinite(number)
    assert result.forecast_score is None or 0.0 <= result.forecast_score <= 1.0
    assert result.status in (Status.ON_TRACK, Status.AT_RISK, Status.OFF_TRACK)
    assert 0.0 <= score(spec, value) <= 1.0
    if spec.baseline is not None:
        raw = progress(value, spec.baseline, spec.target)
        assert abs(raw) <= PROGRESS_LIMIT
        # The sign is right whatever the magnitudes: moved from the baseline toward the
        # target (or away from it), found by comparisons that cannot overflow.
        if value != spec.baseline:
            toward = (value > spec.baseline) == (spec.target > spec.baseline)
            assert raw >= 0 if toward else raw <= 0


@given(specs(), numbers, moments, st.lists(st.tuples(moments, numbers), max_size=30))
def test_evaluate_scores_stay_in_range(
    spec: KrSpec, value: Decimal, at: datetime, history: list[tuple[datetime, Decimal]]
) -> None:
    result = evaluate(
        spec,
        value,
        history=sorted(history),
        at=at,
        cycle_start=START,
        cycle_end=END,
        success_level=0.7,
    )
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.forecast_score is None or 0.0 <= result.forecast_score <= 1.0
    assert 0.0 <= result.expected_progress <= 1.0
    assert result.status in (Status.ON_TRACK, Status.AT_RISK, Status.OFF_TRACK)


# --- loader: any input is an OkrSet or a DefinitionError --------------------------------

KEYS = [
    "cycle",
    "objectives",
    "name",
    "start",
    "end",
    "timezone",
    "id",
    "title",
    "owner",
    "type",
    "parent",
    "key_results",
    "baseline",
    "target",
    "kind",
    "floor",
    "weight",
    "schedule",
    "source",
    "success_level",
    "unit",
    "query",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["auto", "+20%", "-5", "2026-10-01", "UTC", "0 * * * *", "increase", "milestone", "sql"]
    )
    | st.dates()
)
structures = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
yaml_text = st.text(
    alphabet=st.sampled_from(list("abc:-[]{},'\"&*!|>#%@ \n\t0123456789.+?")), max_size=200
)

_yaml = YAML(typ="safe", pure=True)


def _check_load(folder: Path) -> None:
    try:
        result = load_okrs(folder, validate_source=lambda raw: None)
    except DefinitionError as exc:
        assert exc.problems
        assert all(p.file is not None for p in exc.problems)
    else:
        assert isinstance(result, OkrSet)


def _dump(data: Any) -> str:
    import io

    stream = io.StringIO()
    _yaml.dump(data, stream)
    return stream.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_text)
def test_loader_any_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a.yaml").write_text(text)
        _check_load(Path(tmp))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_loader_any_structure(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a.yaml").write_text(_dump(data))
        _check_load(Path(tmp))


valid_kr = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["k1", "k2"]),
        "title": st.just("K"),
        "source": st.just({"type": "sql"}),
    },
    optional={
        "baseline": scalars,
        "target": scalars,
        "kind": scalars,
        "floor": scalars,
        "weight": scalars,
        "schedule": scalars,
        "unit": scalars,
    },
)
near_valid = st.fixed_dictionaries(
    {
        "cycle": st.fixed_dictionaries(
            {"name": st.just("Q"), "start": st.dates(), "end": st.dates()},
            optional={"timezone": st.sampled_from(["UTC", "Europe/Berlin", "Nope/Zone", ""])},
        ),
        "objectives": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from(["a", "b", "c"]),
                    "title": st.just("T"),
                    "owner": st.just("o"),
                    "key_results": st.lists(valid_kr, min_size=0, max_size=3),
                },
                optional={
                    "parent": st.sampled_from(["a", "b", "c", "zz"]),
                    "type": st.sampled_from(["aspirational", "committed", "x"]),
                    "success_level": scalars,
                },
            ),
            max_size=3,
        ),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid, near_valid)
def test_loader_near_valid_documents(first: Any, second: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a.yaml").write_text(_dump(first))
        (Path(tmp) / "b.yml").write_text(_dump(second))
        _check_load(Path(tmp))
