"""Circuit breakers that stop calling a failing dependency until it has had time to recover.

A breaker guards one dependency (the Gemini API, a music source, ...). After
``failure_threshold`` consecutive failures it opens and rejects calls at once
with :class:`CircuitOpenError`. Once ``reset_timeout`` seconds have passed it
turns half-open and lets up to ``half_open_max_calls`` trial calls through: a
trial success closes it again, a trial failure reopens it with a fresh timer.

Breakers belong to one event loop. Every state change happens between awaits,
so they need no lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

from utils.errors import BotError

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(BotError):
    """Raised instead of calling a dependency whose breaker is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"{name} is unavailable, try again in {seconds} s")


def _every_exception(exc: BaseException) -> bool:
    return True


class CircuitBreaker:
    """Closed, open or half-open guard around calls to one dependency.

    Wrap a call in ``async with breaker:``. Callers that cannot wrap the whole
    operation (a stream that fails half-way) report the outcome themselves with
    :meth:`record_success` and :meth:`record_failure`.

    An exception counts as a failure when it is an :class:`Exception` and
    ``is_failure`` accepts it. Other exceptions, and cancellation, neither
    count as failures nor as successes.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = _every_exception,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        if half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        # Tasks holding a half-open trial slot; never longer than half_open_max_calls.
        self._trials: list[asyncio.Task[Any] | None] = []

    @property
    def state(self) -> CircuitState:
        """The current state; an open breaker turns half-open once its timeout has passed."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = CircuitState.HALF_OPEN
            log.info(
                "circuit %s half-open: allowing %d trial call(s)",
                self.name,
                self.half_open_max_calls,
            )
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    @property
    def retry_after(self) -> float:
        """Seconds until an open breaker turns half-open; 0.0 when it is not open."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    async def __aenter__(self) -> Self:
        """Raises :class:`CircuitOpenError` when the breaker is open, or half-open with
        every trial slot taken."""
        state = self.state
        if state is CircuitState.OPEN:
            raise CircuitOpenError(self.name, self.retry_after)
        if state is CircuitState.HALF_OPEN:
            if len(self._trials) >= self.half_open_max_calls:
                raise CircuitOpenError(self.name, 0.0)
            self._trials.append(asyncio.current_task())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        was_trial = self._release_trial()
        if exc is not None and not (isinstance(exc, Exception) and self._is_failure(exc)):
            return
        if self.state is CircuitState.HALF_OPEN and not was_trial:
            # Started before the breaker opened: only trial calls decide a half-open breaker.
            return
        if exc is None:
            self.record_success()
        else:
            self.record_failure()

    def record_success(self) -> None:
        """Report a successful call: resets the failure count and closes a half-open breaker."""
        state = self.state
        if state is CircuitState.OPEN:
            return
        self._failures = 0
        if state is CircuitState.HALF_OPEN:
            self._state = CircuitState.CLOSED
            self._trials.clear()
            log.info("circuit %s closed: trial call succeeded", self.name)

    def record_failure(self) -> None:
        """Report a failed call: may open a closed breaker and reopens a half-open one."""
        state = self.state
        if state is CircuitState.OPEN:
            return
        self._failures += 1
        if state is CircuitState.HALF_OPEN:
            self._open()
            log.warning(
                "circuit %s reopened: trial call failed; next try in %.1f s",
                self.name,
                self.reset_timeout,
            )
        elif self._failures >= self.failure_threshold:
            self._open()
            log.warning(
                "circuit %s opened after %d consecutive failures; next try in %.1f s",
                self.name,
                self._failures,
                self.reset_timeout,
            )

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._trials.clear()

    def _release_trial(self) -> bool:
        """Give back the current task's half-open slot; return whether it held one."""
        task = asyncio.current_task()
        if task in self._trials:
            self._trials.remove(task)
            return True
        return False
