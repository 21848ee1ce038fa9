"""Ordering and load: one reply at a time per channel, channels in parallel, a global cap."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
Submitted = tuple[contextvars.Context, Job, Job | None]  # its context, the job, its `dropped`


class ChannelDispatcher:
    """Runs jobs in submission order per key, at most `max_concurrency` at once overall.

    Each key with work has one worker task that exits when its queue is empty, so
    idle channels cost nothing. A key holds at most `queue_size` waiting jobs. A job
    runs in the context it was submitted from (so it logs with its own request); so does
    its `dropped` callback, which tells whoever waits for it that `close` dropped it.
    """

    def __init__(self, *, max_concurrency: int, queue_size: int) -> None:
        self.queue_size = queue_size
        self._slots = asyncio.Semaphore(max_concurrency)
        self._queues: dict[Hashable, deque[Submitted]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self.closed = False  # by `close`: nothing new starts (it would outlive the stop)

    def submit(self, key: Hashable, job: Job, *, dropped: Job | None = None) -> bool:
        """Queue `job`; False when the key's queue is full or `close` has come (the job is
        dropped). If `close` comes while the job waits, `dropped` runs instead (to say so)."""
        if self.closed:
            return False
        queue = self._queues.setdefault(key, deque())
        submitted = (contextvars.copy_context(), job, dropped)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key, submitted), name=f"ai-{key}")
            return True
        if len(queue) >= self.queue_size:
            return False
        queue.append(submitted)
        return True

    async def _work(self, key: Hashable, submitted: Submitted) -> None:
        queue = self._queues[key]
        try:
            while True:
                context, job, _ = submitted
                async with self._slots:
                    # Cancelling this worker cancels the job's task too.
                    await asyncio.create_task(self._run(key, job), context=context)
                if not queue:
                    break
                submitted = queue.popleft()
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    @staticmethod
    async def _run(key: Hashable, job: Job) -> None:
        try:
            await job()
        except Exception:  # jobs report expected errors themselves; a bug must not
            # stop this channel's queue: log it (with the job's context), go on with the next
            log.exception("AI job for %s failed", key)

    async def close(self, grace: float = 0.0) -> None:
        """Drop waiting jobs and run their `dropped` callbacks, give those and the running
        jobs `grace` seconds to finish, cancel the rest."""
        self.closed = True
        tasks = list(self._workers.values())
        for key, queue in self._queues.items():
            tasks += [
                asyncio.create_task(self._run(key, dropped), context=context)
                for context, _, dropped in queue
                if dropped is not None
            ]
            queue.clear()
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
