"""Tests for utils.reliability.rate_limiter."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.fakes.clock import FakeClock
from utils.reliability.rate_limiter import RateLimiter


class TickingClock:
    """A clock that moves forward by ``step`` every time it is read, from any thread."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.reads = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.reads += 1
            return self.reads * self.step


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_capacity_defaults_to_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(5, 60, clock=clock)
    assert [limiter.acquire("user") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("user") == pytest.approx(12.0)


def test_burst_sets_capacity(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 10, burst=3, clock=clock)
    assert [limiter.acquire("user") for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("user") == pytest.approx(10.0)


def test_refused_acquire_consumes_nothing(clock: FakeClock) -> None:
    limiter = RateLimiter(5, 60, clock=clock)
    for _ in range(5):
        limiter.acquire("user")
    clock.advance(6)  # half a token back
    assert limiter.acquire("user") == pytest.approx(6.0)
    assert limiter.acquire("user") == pytest.approx(6.0)
    clock.advance(6)
    assert limiter.acquire("user") == 0.0
    assert limiter.acquire("user") == pytest.approx(12.0)


def test_waiting_the_returned_delay_is_always_enough(clock: FakeClock) -> None:
    limiter = RateLimiter(7, 3, burst=2, clock=clock)
    granted = 0
    for _ in range(500):
        wait = limiter.acquire("user")
        if wait == 0.0:
            granted += 1
        else:
            clock.advance(wait)
            assert limiter.acquire("user") == 0.0
            granted += 1
    assert granted == 500


def test_refill_is_capped_at_capacity(clock: FakeClock) -> None:
    limiter = RateLimiter(2, 1, clock=clock)
    limiter.acquire("user")
    clock.advance(1_000_000)
    assert [limiter.acquire("user") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("user") > 0.0


def test_cost_takes_several_tokens(clock: FakeClock) -> None:
    limiter = RateLimiter(4, 4, clock=clock)
    assert limiter.acquire("guild", cost=3) == 0.0
    assert limiter.acquire("guild", cost=2) == pytest.approx(1.0)
    assert limiter.acquire("guild", cost=1) == 0.0


@pytest.mark.parametrize("cost", [0, -1, 4.5])
def test_rejects_cost_outside_capacity(clock: FakeClock, cost: float) -> None:
    limiter = RateLimiter(4, 4, clock=clock)
    with pytest.raises(ValueError):
        limiter.acquire("guild", cost=cost)
    with pytest.raises(ValueError):
        limiter.peek("guild", cost=cost)


def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 60, clock=clock)
    assert limiter.acquire(1234) == 0.0
    assert limiter.acquire(1234) > 0.0
    assert limiter.acquire(("channel", 1234)) == 0.0
    assert limiter.acquire(("guild", 1234)) == 0.0
    assert len(limiter) == 3


def test_peek_answers_like_acquire_without_consuming(clock: FakeClock) -> None:
    limiter = RateLimiter(2, 10, clock=clock)
    assert limiter.peek("user") == 0.0
    assert len(limiter) == 0
    limiter.acquire("user")
    limiter.acquire("user")
    clock.advance(2)
    first = limiter.peek("user")
    assert first == pytest.approx(3.0)
    assert limiter.peek("user") == first
    assert limiter.peek("user", cost=2) == pytest.approx(8.0)
    assert limiter.acquire("user") == first
    clock.advance(3)
    assert limiter.peek("user") == 0.0
    assert limiter.peek("user") == 0.0
    assert limiter.acquire("user") == 0.0
    assert limiter.peek("user") > 0.0


def test_lru_bound_evicts_least_recently_used(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 3600, max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        limiter.acquire(key)
    limiter.acquire("a")  # refused, but a is now the most recently used
    limiter.peek("b")  # peeking does not count as use
    limiter.acquire("d")
    assert len(limiter) == 3
    assert limiter.peek("b") == 0.0  # evicted: a fresh, full bucket
    assert limiter.peek("a") > 0.0
    assert limiter.peek("c") > 0.0
    assert limiter.peek("d") > 0.0


def test_lru_bound_holds_under_many_keys(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 60, max_keys=100, clock=clock)
    for user_id in range(10_000):
        limiter.acquire(user_id)
        assert len(limiter) <= 100
    assert len(limiter) == 100
    assert limiter.peek(9_999) > 0.0
    assert limiter.peek(9_900) > 0.0
    assert limiter.peek(9_899) == 0.0


def _hammer(limiter: RateLimiter, threads: int, attempts: int) -> int:
    barrier = threading.Barrier(threads)
    granted = [0] * threads

    def worker(index: int) -> None:
        barrier.wait()
        for _ in range(attempts):
            if limiter.acquire("channel") == 0.0:
                granted[index] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sum(granted)


def test_threads_never_get_more_than_capacity() -> None:
    limiter = RateLimiter(50, 3600)  # real clock; refill during the test is < 1 token
    assert _hammer(limiter, threads=8, attempts=500) == 50


def test_threads_never_get_more_than_capacity_plus_refill() -> None:
    clock = TickingClock(step=0.001)
    limiter = RateLimiter(10, 1, clock=clock)  # 0.01 tokens per clock read
    granted = _hammer(limiter, threads=8, attempts=1000)
    refill = (clock.reads - 1) * clock.step * 10
    assert refill == pytest.approx(79.99)
    assert 10 + refill - 1 <= granted <= 10 + refill


async def test_gathered_acquires_grant_exactly_capacity(clock: FakeClock) -> None:
    limiter = RateLimiter(5, 60, burst=20, clock=clock)

    async def attempt() -> float:
        await asyncio.sleep(0)
        return limiter.acquire(42)

    waits = await asyncio.gather(*(attempt() for _ in range(1000)))
    assert waits.count(0.0) == 20
    assert sorted(set(waits)) == [0.0, pytest.approx(12.0)]


@pytest.mark.parametrize(
    "args",
    [
        {"rate": 0, "per": 1},
        {"rate": 1, "per": 0},
        {"rate": 1, "per": 1, "burst": 0},
        {"rate": 1, "per": 1, "max_keys": 0},
    ],
)
def test_rejects_invalid_settings(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**args)
