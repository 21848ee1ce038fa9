"""Tests for utils.reliability.circuit_breaker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from tests.fakes.clock import FakeClock
from utils.errors import BotError
from utils.reliability.circuit_breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
)

T = TypeVar("T")


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_breaker(clock: FakeClock, **options: Any) -> CircuitBreaker:
    settings: dict[str, Any] = {"failure_threshold": 3, "reset_timeout": 10.0, **options}
    return CircuitBreaker("ai", clock=clock, **settings)


async def fail() -> None:
    raise Boom


async def echo(value: int, *, plus: int = 0) -> int:
    return value + plus


async def call(
    breaker: CircuitBreaker, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    async with breaker:
        return await fn(*args, **kwargs)


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await call(breaker, fail)


async def test_a_call_through_the_breaker_returns_its_result(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    assert await call(breaker, echo, 2, plus=3) == 5
    assert breaker.state is CircuitState.CLOSED


async def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 2
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.failures == 3


async def test_success_resets_consecutive_failures(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 2)
    await call(breaker, echo, 1)
    assert breaker.failures == 0
    await trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


async def test_open_rejects_without_calling(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    clock.advance(2.5)
    with pytest.raises(CircuitOpenError) as caught:
        await call(breaker, counted)
    assert calls == 0
    error = caught.value
    assert isinstance(error, BotError)
    assert error.name == "ai"
    assert error.retry_after == pytest.approx(7.5)
    assert str(error) == "ai is unavailable, try again in 8 s"


async def test_async_with_rejects_when_open(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failure_threshold=1)
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    entered = False
    with pytest.raises(CircuitOpenError):
        async with breaker:
            entered = True
    assert not entered


async def test_turns_half_open_after_reset_timeout(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    assert breaker.retry_after == pytest.approx(10.0)
    clock.advance(9.9)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.retry_after == 0.0


async def test_trial_success_closes(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(10)
    assert await call(breaker, echo, 7) == 7
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0


async def test_trial_failure_reopens_with_fresh_timer(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(15)
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(10.0)
    clock.advance(9.9)
    assert breaker.state is CircuitState.OPEN


async def test_exceptions_rejected_by_is_failure_do_not_count(clock: FakeClock) -> None:
    breaker = make_breaker(clock, is_failure=lambda exc: not isinstance(exc, Ignored))
    await trip(breaker, 2)
    with pytest.raises(Ignored):
        async with breaker:
            raise Ignored
    assert breaker.failures == 2  # neither a failure nor a success
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


async def test_ignored_exception_releases_half_open_slot(clock: FakeClock) -> None:
    breaker = make_breaker(clock, is_failure=lambda exc: not isinstance(exc, Ignored))
    await trip(breaker, 3)
    clock.advance(10)
    with pytest.raises(Ignored):
        async with breaker:
            raise Ignored
    assert breaker.state is CircuitState.HALF_OPEN
    assert await call(breaker, echo, 1) == 1
    assert breaker.state is CircuitState.CLOSED


async def test_cancellation_is_never_a_failure(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failure_threshold=1)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(call(breaker, hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0


async def test_cancelled_trial_releases_its_slot(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(10)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(call(breaker, hang))
    await started.wait()
    with pytest.raises(CircuitOpenError):
        await call(breaker, echo, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await call(breaker, echo, 1) == 1
    assert breaker.state is CircuitState.CLOSED


async def test_half_open_admits_only_max_concurrent_trials(clock: FakeClock) -> None:
    breaker = make_breaker(clock, half_open_max_calls=3)
    await trip(breaker, 3)
    clock.advance(10)
    gate = asyncio.Event()
    inside = 0
    peak = 0

    async def trial() -> None:
        nonlocal inside, peak
        async with breaker:
            inside += 1
            peak = max(peak, inside)
            await gate.wait()
            inside -= 1

    tasks = [asyncio.create_task(trial()) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    rejected = [r for r in results if isinstance(r, CircuitOpenError)]
    assert results.count(None) == 3
    assert len(rejected) == 47
    assert peak == 3
    assert all(error.retry_after == 0.0 for error in rejected)
    assert str(rejected[0]) == "ai is unavailable, try again in 1 s"
    assert breaker.state is CircuitState.CLOSED


async def test_calls_started_before_opening_do_not_decide_half_open(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    release = asyncio.Event()

    async def slow(outcome: BaseException | None) -> None:
        await release.wait()
        if outcome is not None:
            raise outcome

    stale_success = asyncio.create_task(call(breaker, slow, None))
    stale_failure = asyncio.create_task(call(breaker, slow, Boom()))
    await asyncio.sleep(0)
    await trip(breaker, 3)
    clock.advance(10)
    assert breaker.state is CircuitState.HALF_OPEN

    release.set()
    await stale_success
    with pytest.raises(Boom):
        await stale_failure
    assert breaker.state is CircuitState.HALF_OPEN
    assert await call(breaker, echo, 1) == 1
    assert breaker.state is CircuitState.CLOSED


async def test_record_success_and_failure_drive_the_state(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(10)
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(10)
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0


def test_failures_while_open_do_not_extend_the_timer(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(6)
    breaker.record_failure()
    breaker.record_success()
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(4.0)
    assert breaker.failures == 3


async def test_state_failures_and_retry_delay(clock: FakeClock) -> None:
    breaker = make_breaker(clock)

    def seen() -> tuple[str, int, float]:
        return breaker.state, breaker.failures, breaker.retry_after

    assert seen() == ("closed", 0, 0.0)
    await trip(breaker, 3)
    clock.advance(4)
    assert seen() == ("open", 3, 6.0)
    clock.advance(6)
    assert seen() == ("half_open", 3, 0.0)


async def test_logs_transitions(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="utils.reliability.circuit_breaker")
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(10)
    await call(breaker, echo, 1)
    levels = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in levels] == [logging.WARNING, logging.INFO, logging.INFO]
    assert "opened" in levels[0][1]
    assert "half-open" in levels[1][1]
    assert "closed" in levels[2][1]
    assert all("ai" in message for _, message in levels)


@pytest.mark.parametrize(
    "options",
    [{"failure_threshold": 0}, {"reset_timeout": -1.0}, {"half_open_max_calls": 0}],
)
def test_rejects_invalid_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("ai", **options)
