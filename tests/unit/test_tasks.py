"""log_failure: a background task's exception is logged when it happens; worker threads
give way to the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

import pytest

from cogs.ai.records import Turn
from utils.db_sqlite import SqliteDatabase
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService
from utils.tasks import log_failure

SCOPE = Scope("guild", 1)


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


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux's scheduling policies")
async def test_the_databases_and_the_memorys_threads_give_way_to_the_event_loop(
    tmp_path: Path,
) -> None:
    """Each hand-off to the SQLite or memory threads would otherwise switch the core to
    them and back before the loop carries on; the loop thread keeps its own policy."""
    db = SqliteDatabase(tmp_path / "bot.db")
    await db.connect()
    memory = MemoryService(db, HashingEmbedder(), directory=tmp_path / "memory")
    await memory.start()
    try:
        await memory.add_fact(SCOPE, 1, "alice", "keeps bees on her roof")
        memory.index_turns(SCOPE, 5, [Turn("user", 2, "bob", "hi"), Turn("model", 0, "bot", "hey")])
        await memory.flush()  # bulk embedding
        found = await memory.recall(SCOPE, "who keeps bees?")  # query, search, reads
        assert [item.text for item in found] == ["alice: keeps bees on her roof"]
        workers = {
            thread.name: os.sched_getscheduler(thread.native_id or 0)
            for thread in threading.enumerate()
            if thread.name.startswith("memory-") or "connection_worker" in thread.name
        }
    finally:
        await memory.close()
        await db.close()
    kinds = {
        "sqlite" if "connection_worker" in name else name.rsplit("_", 1)[0] for name in workers
    }
    assert kinds == {"sqlite", "memory-embed", "memory-embed-bulk", "memory-faiss"}
    assert set(workers.values()) == {os.SCHED_BATCH}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
