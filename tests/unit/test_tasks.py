"""log_failure: a background task's exception is logged when it happens."""

from __future__ import annotations

import asyncio
import logging

import pytest

from utils.tasks import log_failure


async def test_a_failed_task_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken(), name="music-save")
    task.add_done_callback(log_failure)
    with caplog.at_level(logging.ERROR, logger="utils.tasks"):
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    (record,) = caplog.records
    assert record.getMessage() == "music-save failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_cancelled_and_finished_tasks_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    waiting = asyncio.create_task(asyncio.sleep(10))
    finished = asyncio.create_task(asyncio.sleep(0))
    for task in (waiting, finished):
        task.add_done_callback(log_failure)
    waiting.cancel()
    with caplog.at_level(logging.ERROR, logger="utils.tasks"):
        await asyncio.gather(waiting, finished, return_exceptions=True)
        await asyncio.sleep(0)
    assert caplog.records == []
