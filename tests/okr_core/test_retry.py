"""The one retry policy: jittered exponential backoff, capped, Retry-After honoured or refused."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from okr_pipeline.okr_core.retry import (
    MAX_DELAY_SECONDS,
    RetryAfterTooLong,
    RetryPolicy,
    retry_after_seconds,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__(f"flaky (retry after {retry_after})")
        self.retry_after = retry_after


class Other(Exception):
    pass


def failing(*outcomes: Exception | str) -> Callable[[], str]:
    """An attempt that raises or returns each outcome in turn."""
    queue = list(outcomes)

    def attempt() -> str:
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt


# --- delays ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "ceilings"),
    [
        # The defaults of the HTTP source (retries 3, backoff 0.5) and of the alert channels.
        (RetryPolicy(attempts=4, first_delay=0.5), [0.5, 1.0, 2.0]),
        (RetryPolicy(attempts=3, first_delay=0.5), [0.5, 1.0]),
        # Doubling stops at the cap.
        (RetryPolicy(attempts=11, first_delay=0.5), [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]),
        (RetryPolicy(attempts=4, first_delay=60), [30.0, 30.0, 30.0]),
        (RetryPolicy(attempts=4, first_delay=1, cap=3), [1.0, 2.0, 3.0]),
        (RetryPolicy(attempts=3, first_delay=0), [0.0, 0.0]),
        (RetryPolicy(attempts=1), []),
    ],
)
def test_ceilings_double_up_to_the_cap(policy: RetryPolicy, ceilings: list[float]) -> None:
    assert [policy.ceiling(n) for n in range(1, policy.attempts)] == ceilings


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        (0.5, 0.0, 1.0),  # equal jitter: never below half the ceiling ...
        (0.5, 0.5, 1.5),
        (0.5, 0.999, 1.999),  # ... and never above it
        (1.0, 0.0, 0.0),  # full jitter
        (1.0, 0.25, 0.5),
        (0.0, 0.7, 2.0),  # no jitter: exactly the ceiling
    ],
)
def test_jitter_draws_within_its_share_of_the_ceiling(
    jitter: float, draw: float, expected: float
) -> None:
    policy = RetryPolicy(attempts=3, first_delay=1.0, jitter=jitter)
    assert policy.delay(2, random=fixed(draw)) == pytest.approx(expected)


def test_the_default_jitter_is_equal_jitter() -> None:
    assert RetryPolicy().jitter == 0.5
    assert RetryPolicy().cap == MAX_DELAY_SECONDS == 30.0


def test_a_seeded_random_gives_the_same_delays() -> None:
    policy = RetryPolicy(attempts=6)

    def delays(seed: int) -> list[float]:
        draw = random.Random(seed).random
        return [policy.delay(n, random=draw) for n in range(1, 6)]

    first = delays(3)
    assert first == delays(3)
    assert first != delays(4)
    assert len({d / policy.ceiling(n) for n, d in enumerate(first, 1)}) > 1  # really random


@settings(deadline=None)  # pure arithmetic; a loaded parallel run must not fail it on time
@given(
    attempts=st.integers(1, 12),
    first_delay=st.floats(0, 60),
    cap=st.floats(0, 120),
    jitter=st.floats(0, 1),
    retry=st.integers(1, 10_000),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_every_delay_lies_within_the_jitter_bounds(
    attempts: int, first_delay: float, cap: float, jitter: float, retry: int, draw: float
) -> None:
    policy = RetryPolicy(attempts=attempts, first_delay=first_delay, cap=cap, jitter=jitter)
    ceiling = policy.ceiling(retry)
    assert ceiling == min(cap, first_delay * 2.0 ** min(retry - 1, 64))
    delay = policy.delay(retry, random=fixed(draw))
    assert ceiling * (1 - jitter) - 1e-9 <= delay <= ceiling + 1e-9
    assert delay <= cap + 1e-9
    assert policy.ceiling(retry + 1) >= ceiling  # waits never shrink


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attempts": 0}, "attempts must be at least 1, got 0"),
        ({"attempts": -3}, "attempts must be at least 1, got -3"),
        ({"first_delay": -0.5}, "first_delay and cap must be >= 0"),
        ({"cap": -1}, "first_delay and cap must be >= 0"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1, got 1.5"),
        ({"jitter": -0.1}, "jitter must be between 0 and 1"),
    ],
)
def test_an_impossible_policy_is_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_the_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.attempts = 9  # type: ignore[misc]
    assert policy == RetryPolicy(attempts=3, first_delay=0.5, cap=30.0, jitter=0.5)


# --- Retry-After -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("3", 3.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # a date in the past: now
        ("Wed, 01 May 2024 13:00:00 GMT", 3600.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 32 May 2024 12:00:00 GMT", None),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header, NOW) == expected


@pytest.mark.parametrize(
    ("asked", "expected"),
    [(0.0, 0.0), (2.0, 2.0), (30.0, 30.0), (-1.0, 0.0)],
)
def test_retry_after_replaces_the_backoff_without_jitter(asked: float, expected: float) -> None:
    policy = RetryPolicy(attempts=3, first_delay=0.5)
    assert policy.delay(1, retry_after=asked, random=fixed(0.9)) == expected


@pytest.mark.parametrize("asked", [30.001, 3600.0])
def test_retry_after_over_the_cap_is_refused(asked: float) -> None:
    with pytest.raises(RetryAfterTooLong, match=r"retry after .*s \(more than 30s\)") as info:
        RetryPolicy().delay(1, retry_after=asked)
    assert (info.value.seconds, info.value.cap) == (asked, 30.0)


# --- the loop ----------------------------------------------------------------------------


def test_call_retries_until_it_works_with_jittered_waits() -> None:
    sleeps: list[float] = []
    told: list[tuple[str, int, float]] = []
    policy = RetryPolicy(attempts=4, first_delay=0.5)
    result = policy.call(
        failing(Flaky(), Flaky(), "value"),
        retry_on=Flaky,
        on_retry=lambda failure, tried, wait: told.append((str(failure), tried, wait)),
        sleep=sleeps.append,
        random=fixed(0.0),
    )
    assert result == "value"
    assert sleeps == [0.25, 0.5]  # half of 0.5 and of 1.0: the draw was 0
    assert [(tried, wait) for _, tried, wait in told] == [(1, 0.25), (2, 0.5)]


def test_call_gives_up_after_the_attempts_with_the_last_failure() -> None:
    sleeps: list[float] = []
    last = Flaky()
    with pytest.raises(Flaky) as info:
        RetryPolicy(attempts=3).call(
            failing(Flaky(), Flaky(), last), retry_on=Flaky, sleep=sleeps.append
        )
    assert info.value is last
    assert len(sleeps) == 2  # no wait after the last attempt
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_one_attempt_never_waits() -> None:
    sleeps: list[float] = []
    with pytest.raises(Flaky):
        RetryPolicy(attempts=1).call(failing(Flaky()), retry_on=Flaky, sleep=sleeps.append)
    assert sleeps == []


def test_other_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    with pytest.raises(Other):
        RetryPolicy(attempts=5).call(
            failing(Flaky(), Other(), "never"), retry_on=Flaky, sleep=sleeps.append
        )
    assert len(sleeps) == 1


def test_call_honours_retry_after() -> None:
    sleeps: list[float] = []
    result = RetryPolicy(attempts=3).call(
        failing(Flaky(retry_after=2.0), Flaky(retry_after=0.0), "ok"),
        retry_on=Flaky,
        retry_after=lambda failure: failure.retry_after,
        sleep=sleeps.append,
    )
    assert (result, sleeps) == ("ok", [2.0, 0.0])


@pytest.mark.parametrize("attempts", [1, 3])
def test_call_refuses_a_retry_after_over_the_cap_even_on_the_last_attempt(
    attempts: int,
) -> None:
    sleeps: list[float] = []
    failure = Flaky(retry_after=3600.0)
    with pytest.raises(RetryAfterTooLong) as info:
        RetryPolicy(attempts=attempts).call(
            failing(failure),
            retry_on=Flaky,
            retry_after=lambda f: f.retry_after,
            sleep=sleeps.append,
        )
    assert info.value.__cause__ is failure  # the caller can still say what failed
    assert sleeps == []
