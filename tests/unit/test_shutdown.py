"""Tests for utils.reliability.shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator

import pytest

from utils.reliability.shutdown import ShutdownManager


@contextlib.contextmanager
def logged(text: str) -> Iterator[asyncio.Event]:
    """An event set once the shutdown module logs a message containing ``text``."""
    seen = asyncio.Event()

    class Watcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    logger = logging.getLogger("utils.reliability.shutdown")
    watcher = Watcher()
    logger.addHandler(watcher)
    try:
        yield seen
    finally:
        logger.removeHandler(watcher)


async def test_runs_handlers_by_priority_then_registration_order() -> None:
    manager = ShutdownManager()
    ran: list[str] = []

    def record(name: str) -> Callable[[], None]:
        return lambda: ran.append(name)

    manager.register("database", record("database"), priority=200)
    manager.register("voice", record("voice"), priority=10)
    manager.register("http", record("http"))
    manager.register("memory", record("memory"))
    manager.register("tasks", record("tasks"), priority=10)

    results = await manager.shutdown("test")

    assert ran == ["voice", "tasks", "http", "memory", "database"]
    assert results == dict.fromkeys(ran, "ok")
    assert list(results) == ran


async def test_accepts_sync_async_and_awaitable_returning_callbacks() -> None:
    manager = ShutdownManager()
    ran: list[str] = []

    async def close_client() -> None:
        await asyncio.sleep(0)
        ran.append("async")

    manager.register("sync", lambda: ran.append("sync"))
    manager.register("async", close_client)
    manager.register("returns-coroutine", lambda: close_client())

    assert await manager.shutdown() == {"sync": "ok", "async": "ok", "returns-coroutine": "ok"}
    assert ran == ["sync", "async", "async"]


async def test_failing_and_hanging_handlers_do_not_stop_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = ShutdownManager()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("socket already closed")

    async def stuck() -> None:
        await asyncio.Event().wait()

    manager.register("first", lambda: ran.append("first"), priority=1)
    manager.register("broken", broken, priority=2)
    manager.register("stuck", stuck, priority=3, timeout=0.1)
    manager.register("last", lambda: ran.append("last"), priority=4)

    with caplog.at_level(logging.ERROR, logger="utils.reliability.shutdown"):
        results = await manager.shutdown()

    assert results == {
        "first": "ok",
        "broken": "error: RuntimeError",
        "stuck": "timeout",
        "last": "ok",
    }
    assert ran == ["first", "last"]
    messages = [record.getMessage() for record in caplog.records]
    assert any("'broken'" in message for message in messages)
    assert any("'stuck'" in message and "timed out" in message for message in messages)
    broken_record = next(r for r in caplog.records if "'broken'" in r.getMessage())
    assert broken_record.exc_info is not None


async def test_a_handler_that_swallows_cancellation_still_ends_at_its_timeout() -> None:
    manager = ShutdownManager()
    ran: list[str] = []
    done = asyncio.Event()

    async def stop_players() -> None:
        # Like a cog stopping its players one by one, each `with suppress(CancelledError):
        # await task`: that also swallows the cancellation its timeout sends.
        while not done.is_set():
            player = asyncio.create_task(asyncio.sleep(0.05))
            with contextlib.suppress(asyncio.CancelledError):
                await player

    manager.register("players", stop_players, priority=1, timeout=0.1)
    manager.register("database", lambda: ran.append("database"), priority=2)
    try:
        results = await asyncio.wait_for(manager.shutdown(), 3)
    finally:
        done.set()

    assert results == {"players": "timeout", "database": "ok"}
    assert ran == ["database"]


async def test_default_timeout_applies() -> None:
    manager = ShutdownManager(default_timeout=0.05)

    async def stuck() -> None:
        await asyncio.Event().wait()

    manager.register("stuck", stuck)
    assert await manager.shutdown() == {"stuck": "timeout"}


async def test_timeout_error_raised_by_handler_is_an_error_not_a_timeout() -> None:
    manager = ShutdownManager()

    async def gives_up() -> None:
        raise TimeoutError

    manager.register("gives-up", gives_up)
    assert await manager.shutdown() == {"gives-up": "error: TimeoutError"}


async def test_cancellation_leaking_from_a_handler_does_not_stop_the_rest() -> None:
    manager = ShutdownManager()
    ran: list[str] = []

    async def awaits_cancelled_task() -> None:
        task = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task

    manager.register("leaky", awaits_cancelled_task)
    manager.register("next", lambda: ran.append("next"))

    assert await manager.shutdown() == {"leaky": "error: CancelledError", "next": "ok"}
    assert ran == ["next"]


async def test_concurrent_and_repeated_calls_run_handlers_once() -> None:
    manager = ShutdownManager()
    calls = 0

    async def close() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    manager.register("close", close)
    assert not manager.is_shutting_down

    results = await asyncio.gather(*(manager.shutdown(f"caller {i}") for i in range(10)))

    assert manager.is_shutting_down
    assert calls == 1
    assert results == [{"close": "ok"}] * 10
    assert await manager.shutdown("again") == {"close": "ok"}
    assert calls == 1


async def test_cancelling_a_caller_does_not_cancel_the_run() -> None:
    manager = ShutdownManager()
    started = asyncio.Event()
    finished: list[str] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.02)
        finished.append("slow")

    manager.register("slow", slow)
    caller = asyncio.create_task(manager.shutdown())
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

    assert await manager.shutdown() == {"slow": "ok"}
    assert finished == ["slow"]


async def test_release_runs_a_handler_once_whoever_asks_first() -> None:
    manager = ShutdownManager()
    ran: list[str] = []
    manager.register("kept", lambda: ran.append("kept"))
    manager.register("reloaded", lambda: ran.append("reloaded"))
    with pytest.raises(ValueError):
        manager.register("kept", lambda: None)

    assert await manager.release("reloaded") == "ok"  # a cog unloading alone
    assert ran == ["reloaded"]
    assert await manager.release("never-registered") is None
    manager.register("reloaded", lambda: ran.append("reloaded again"))  # loaded again

    assert await manager.shutdown() == {"kept": "ok", "reloaded": "ok"}
    assert await manager.release("kept") == "ok", "the shutdown ran it: not again"
    assert await manager.release("reloaded") == "ok"
    assert ran == ["reloaded", "kept", "reloaded again"]


async def test_release_during_the_shutdown_waits_for_the_same_run() -> None:
    manager = ShutdownManager()
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()

    manager.register("slow", slow, timeout=1)
    run = asyncio.create_task(manager.shutdown())
    await started.wait()
    unloading = asyncio.create_task(manager.release("slow"))
    release.set()
    assert await unloading == "ok"
    assert await run == {"slow": "ok"}
    assert calls == 1


@pytest.mark.parametrize("timeout", [0, -1])
def test_rejects_non_positive_timeouts(timeout: float) -> None:
    with pytest.raises(ValueError):
        ShutdownManager(default_timeout=timeout)
    with pytest.raises(ValueError):
        ShutdownManager().register("x", lambda: None, timeout=timeout)


async def test_sigterm_starts_on_signal_and_a_second_one_exits_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = ShutdownManager()
    signalled = asyncio.Event()
    calls = 0
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)

    async def on_signal() -> None:
        nonlocal calls
        calls += 1
        signalled.set()
        await manager.shutdown("signal")

    manager.install_signal_handlers(on_signal)
    try:
        # Without an installed handler SIGTERM would kill the test run.
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(1):
            await signalled.wait()
        assert calls == 1
        assert exits == []

        with logged("exiting now") as exiting:
            os.kill(os.getpid(), signal.SIGINT)
            async with asyncio.timeout(1):
                await exiting.wait()
        assert exits == [128 + signal.SIGINT]
        assert calls == 1
    finally:
        manager.remove_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_signal_during_shutdown_is_ignored_unless_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = ShutdownManager()
    release = asyncio.Event()
    called: list[str] = []
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)

    async def on_signal() -> None:
        called.append("on_signal")

    manager.register("slow", release.wait)
    manager.install_signal_handlers(on_signal)
    try:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        run = asyncio.create_task(manager.shutdown("owner command"))
        await asyncio.sleep(0)
        with logged("send it again") as ignored:
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(1):
                await ignored.wait()
        assert exits == []
        with logged("exiting now") as exiting:
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(1):
                await exiting.wait()
        assert exits == [128 + signal.SIGTERM]
        release.set()
        assert await run == {"slow": "ok"}
    finally:
        manager.remove_signal_handlers()
    assert called == []


async def test_failing_on_signal_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    manager = ShutdownManager()

    async def on_signal() -> None:
        raise RuntimeError("close failed")

    manager.install_signal_handlers(on_signal)
    try:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        with logged("signal handler failed") as failed:
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(1):
                await failed.wait()
    finally:
        manager.remove_signal_handlers()
    record = next(r for r in caplog.records if r.getMessage() == "signal handler failed")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_signal_handlers_are_skipped_where_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    def unsupported(*args: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", unsupported)
    monkeypatch.setattr(loop, "remove_signal_handler", unsupported)
    manager = ShutdownManager()

    async def on_signal() -> None:
        pass

    manager.install_signal_handlers(on_signal)
    manager.remove_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
