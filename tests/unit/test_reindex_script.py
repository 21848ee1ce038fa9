"""`scripts/reindex_memory.py` beside shard processes, each on a DATA_DIR of its own."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from utils.db import open_database
from utils.instance_lock import InstanceLock
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService

ROOT = Path(__file__).resolve().parents[2]
GUILD = Scope("guild", 1)


async def reindex(env_data_dir: Path, database_url: str, *args: str) -> tuple[int | None, str]:
    """Run the script with DATA_DIR set as `.env` would: exit status and standard error."""
    env = {**os.environ, "DATA_DIR": str(env_data_dir), "EMBEDDING_MODEL": "hashing"}
    if database_url:
        env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "reindex_memory.py"),
        *args,
        env=env,
        cwd=env_data_dir,  # away from any .env of the checkout
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, err.decode()


@pytest.mark.backends("sqlite")  # the same on PostgreSQL, where shards run: runs are slow
async def test_the_data_dir_of_a_shard_process_must_be_named_and_is_built_there(
    tmp_path: Path, database_url: str
) -> None:
    """gembot@0-3 runs on DATA_DIR=data/0-3 while `.env` (if anything) names data: run
    without --data-dir, the script built indexes no process reads, beside it, taking
    data/bot.lock, which none holds (the lock of --data-dir is the bot's own one)."""
    instance = tmp_path / "0-3"
    (instance / "memory").mkdir(parents=True)
    db = open_database(database_url, instance / "bot.db")
    await db.connect()
    service = MemoryService(db, HashingEmbedder(), directory=tmp_path, config=MemoryConfig())
    try:
        await service.start()
        await service.add_fact(GUILD, 7, "alice", "I keep bees.")
    finally:
        await service.close()
        await db.close()
    with InstanceLock(instance):  # what the running shard process holds
        status, err = await reindex(tmp_path, database_url)
        assert status == 2, err
        assert err == (
            f"{tmp_path} holds the data directories of shard processes (0-3), which read"
            f" their indexes there: give --data-dir {instance} (and --scope) for the one"
            " to rebuild\n"
        )
    assert list((instance / "memory").iterdir()) == []
    status, err = await reindex(tmp_path, database_url, "--data-dir", str(instance))
    assert status == 0, err
    assert [p.name for p in (instance / "memory").iterdir()] == ["guild-1.faiss"]
