"""ChannelDispatcher: per-channel order, cross-channel concurrency, global cap, bounds."""

from __future__ import annotations

import asyncio

from cogs.ai.dispatch import ChannelDispatcher


async def drained(dispatcher: ChannelDispatcher, *keys: str) -> None:
    """Wait for every job submitted so far: a last job per key runs after them."""
    barriers = []
    for key in keys:
        barrier = asyncio.Event()

        async def arrive(barrier: asyncio.Event = barrier) -> None:
            barrier.set()

        assert dispatcher.submit(key, arrive)
        barriers.append(barrier.wait())
    await asyncio.gather(*barriers)


async def test_one_channel_runs_in_order_and_channels_overlap() -> None:
    dispatcher = ChannelDispatcher(max_concurrency=4, queue_size=10)
    log: list[str] = []

    def job(name: str, delay: float):
        async def run() -> None:
            log.append(f"start {name}")
            await asyncio.sleep(delay)
            log.append(f"end {name}")

        return run

    assert dispatcher.submit("a", job("a1", 0.05))
    assert dispatcher.submit("a", job("a2", 0.0))
    assert dispatcher.submit("b", job("b1", 0.0))
    await drained(dispatcher, "a", "b")
    assert log.index("end a1") < log.index("start a2")
    assert log.index("end b1") < log.index("end a1"), "b does not wait for a"


async def test_global_cap_and_queue_bound() -> None:
    dispatcher = ChannelDispatcher(max_concurrency=2, queue_size=1)
    running = 0
    peak = 0
    finished = 0
    release = asyncio.Event()
    all_finished = asyncio.Event()

    async def job() -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        finished += 1
        if finished == 6:
            all_finished.set()

    assert all(dispatcher.submit(key, job) for key in range(5))
    assert dispatcher.submit(0, job)  # one may wait behind the running job
    assert not dispatcher.submit(0, job)  # the next one is refused
    await asyncio.sleep(0.05)
    assert peak == 2
    release.set()
    await all_finished.wait()
    assert peak == 2 and running == 0


async def test_a_failing_job_does_not_stop_the_channel() -> None:
    dispatcher = ChannelDispatcher(max_concurrency=1, queue_size=5)
    done: list[int] = []

    async def bad() -> None:
        raise RuntimeError("boom")

    async def good() -> None:
        done.append(1)

    dispatcher.submit("c", bad)
    dispatcher.submit("c", good)
    await drained(dispatcher, "c")
    assert done == [1]


async def test_close_cancels_work() -> None:
    dispatcher = ChannelDispatcher(max_concurrency=1, queue_size=5)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    dispatcher.submit("x", forever)
    await started.wait()
    await asyncio.wait_for(dispatcher.close(), 1)
    assert cancelled.is_set()


async def test_close_tells_waiting_jobs_within_the_grace() -> None:
    dispatcher = ChannelDispatcher(max_concurrency=1, queue_size=5)
    started = asyncio.Event()
    told: list[str] = []

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def never() -> None:
        raise AssertionError("a dropped job must not run")

    async def tell() -> None:
        told.append("dropped")

    async def hang() -> None:  # a dead Discord
        await asyncio.sleep(3600)

    dispatcher.submit("x", forever)
    dispatcher.submit("x", never, dropped=tell)
    dispatcher.submit("x", never, dropped=hang)
    dispatcher.submit("x", never)
    await started.wait()
    await asyncio.wait_for(dispatcher.close(grace=0.1), 1)
    assert told == ["dropped"]
