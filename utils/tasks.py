"""Background work: tasks whose failures are not lost, and worker threads that give way
to the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def log_failure(task: asyncio.Task[Any], *, logger: logging.Logger = log) -> None:
    """Done callback: log a background task's exception, with its traceback, at once
    (asyncio itself mentions it only when the task is garbage-collected)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("%s failed", task.get_name(), exc_info=error)


def give_way(thread_id: int = 0) -> None:
    """Let a worker thread (`thread_id`: its native id; 0: the calling one) give way to
    the event loop: handed work, it waits until the loop thread blocks instead of taking
    the core from it at once (Linux's SCHED_BATCH; the same share of the CPU). On one
    busy core every hand-off to a thread otherwise switches to it and back before the
    loop carries on (docs/BENCHMARKS.md). Elsewhere than Linux it does nothing."""
    if hasattr(os, "SCHED_BATCH"):
        os.sched_setscheduler(thread_id, os.SCHED_BATCH, os.sched_param(0))
