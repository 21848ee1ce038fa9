"""Background tasks whose failures are not lost."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def log_failure(task: asyncio.Task[Any], *, logger: logging.Logger = log) -> None:
    """Done callback: log a background task's exception, with its traceback, at once
    (asyncio itself mentions it only when the task is garbage-collected)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("%s failed", task.get_name(), exc_info=error)
