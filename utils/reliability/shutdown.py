"""Graceful shutdown: ordered cleanup handlers with timeouts, and SIGTERM/SIGINT handling.

Services register a cleanup callback under a name. :meth:`ShutdownManager.shutdown`
runs them, lowest priority first, each under its own timeout, so one broken or
stuck handler cannot keep the others from running.  This is the only path that
stops them: a cog unloading (a reload, or discord.py unloading extensions after
the shutdown) calls :meth:`ShutdownManager.release`, which runs its handler only
if it has not run yet.  Every handler runs at most once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from utils.tasks import log_failure

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
CANCEL_GRACE = 1.0  # seconds a timed-out handler gets to end once cancelled


@dataclass(slots=True, eq=False)
class _Handler:
    name: str
    callback: Callable[[], Awaitable[object] | object]
    priority: int
    timeout: float
    _run: asyncio.Task[str] | None = None

    async def run_once(self) -> str:
        """Run the callback the first time; every call gets that run's result."""
        if self._run is None:
            self._run = asyncio.get_running_loop().create_task(
                _run_handler(self), name=f"shutdown: {self.name}"
            )
        return await asyncio.shield(self._run)


class ShutdownManager:
    """Runs registered cleanup handlers once when the bot stops."""

    def __init__(self, *, default_timeout: float = 5.0) -> None:
        if default_timeout <= 0:
            raise ValueError("default_timeout must be positive")
        self.default_timeout = default_timeout
        self._handlers: dict[str, _Handler] = {}
        self._run: asyncio.Task[dict[str, str]] | None = None
        self._installed: list[tuple[asyncio.AbstractEventLoop, signal.Signals]] = []
        self._signalled = False
        self._signal_task: asyncio.Future[None] | None = None

    def register(
        self,
        name: str,
        callback: Callable[[], Awaitable[object] | object],
        *,
        priority: int = 100,
        timeout: float | None = None,
    ) -> None:
        """Run ``callback`` at shutdown; lower priorities run first, ties in registration order.

        ``callback`` may be sync or async; an awaitable result is awaited. A sync
        callback runs on the event loop, where its timeout cannot interrupt it.
        Raises ValueError if ``name`` is already registered.
        """
        if name in self._handlers:
            raise ValueError(f"shutdown handler {name!r} is already registered")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self._handlers[name] = _Handler(
            name, callback, priority, self.default_timeout if timeout is None else timeout
        )

    async def release(self, name: str) -> str | None:
        """Drop the handler called ``name`` and run it now, unless it ran already (in the
        shutdown). For a service stopping alone, as a cog does when it unloads.

        Returns its result as :meth:`shutdown` reports it; None for an unknown name.
        """
        handler = self._handlers.pop(name, None)
        return None if handler is None else await handler.run_once()

    @property
    def is_shutting_down(self) -> bool:
        return self._run is not None

    async def shutdown(self, reason: str = "") -> dict[str, str]:
        """Run every handler once and return name -> "ok", "timeout" or "error: <ExcType>".

        Later and concurrent calls run nothing and get the first run's result.
        Cancelling a caller does not cancel the run.
        """
        if self._run is None:
            self._run = asyncio.get_running_loop().create_task(
                self._run_handlers(reason), name="shutdown"
            )
        return dict(await asyncio.shield(self._run))

    def install_signal_handlers(self, on_signal: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``on_signal()`` as a task on the first SIGTERM or SIGINT (unless a
        shutdown is already running); on a second one (Ctrl-C pressed again), exit the
        process at once without waiting for the shutdown.

        Does nothing where the running loop cannot handle signals (Windows,
        or a loop outside the main thread).
        """
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            try:
                loop.add_signal_handler(sig, self._on_signal, sig, on_signal)
            except (NotImplementedError, RuntimeError):
                log.debug("cannot handle %s on this event loop", sig.name)
            else:
                self._installed.append((loop, sig))

    def remove_signal_handlers(self) -> None:
        """Restore the default behaviour of the signals :meth:`install_signal_handlers` took."""
        for loop, sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def _on_signal(
        self, sig: signal.Signals, on_signal: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        if self._signalled:
            log.error(
                "received %s, a second signal; exiting now, before the shutdown ends", sig.name
            )
            os._exit(128 + sig)
        self._signalled = True
        if self.is_shutting_down:
            log.warning("received %s while shutting down; send it again to exit at once", sig.name)
            return
        log.warning("received %s; shutting down (send it again to exit at once)", sig.name)
        self._signal_task = asyncio.create_task(on_signal(), name="signal handler")
        self._signal_task.add_done_callback(partial(log_failure, logger=log))

    async def _run_handlers(self, reason: str) -> dict[str, str]:
        log.info("shutting down%s", f": {reason}" if reason else "")
        handlers = sorted(self._handlers.values(), key=lambda handler: handler.priority)
        return {handler.name: await handler.run_once() for handler in handlers}


async def _run_handler(handler: _Handler) -> str:
    call = asyncio.get_running_loop().create_task(
        _call(handler.callback), name=f"shutdown handler: {handler.name}"
    )
    try:
        done, _ = await asyncio.wait({call}, timeout=handler.timeout)
    except asyncio.CancelledError:
        call.cancel()
        raise
    if not done:
        # A handler may swallow the cancellation (`suppress(CancelledError)` around an
        # await) and go on: give it a moment to end, then leave it so the rest can run.
        call.cancel()
        call.add_done_callback(partial(log_failure, logger=log))
        await asyncio.wait({call}, timeout=CANCEL_GRACE)
        log.error("shutdown handler %r timed out after %.1f s", handler.name, handler.timeout)
        return "timeout"
    if call.cancelled():
        # The handler let a cancellation of its own escape; the shutdown goes on.
        log.error("shutdown handler %r raised CancelledError", handler.name)
        return "error: CancelledError"
    if (error := call.exception()) is not None:
        log.error("shutdown handler %r failed", handler.name, exc_info=error)
        return f"error: {type(error).__name__}"
    return "ok"


async def _call(callback: Callable[[], Awaitable[object] | object]) -> None:
    result = callback()
    if inspect.isawaitable(result):
        await result
