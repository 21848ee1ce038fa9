"""kill -9 in the middle of a burst of replies: SQLite stays intact, a corrupt index is rebuilt.

The issue found that `kill -9` left the database intact (WAL, one writer) and that a
corrupt FAISS file was rebuilt from SQLite. This kills `python bot.py` while replies
stream in four channels and memory indexes in the background, corrupts the memory
index file, starts the bot again and checks that it answers and still remembers.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import BASIC
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.reliability.conftest import SpawnBot, answered, integrity, mention, replies_to
from utils.memory.index import VectorIndex
from utils.memory.records import Scope

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

CHUNKS = ["Part one. ", "Part two. ", "Part three. ", "Part four."]
AI_SETTINGS = {
    "gemini_timeout": 5,
    "ai_edit_interval": 0.1,
    "memory_enabled": "true",
    "embedding_model": "hashing",  # no model to load: the index is what is tested
    "memory_consolidation_minutes": 0,
}


def count(database: Path, sql: str) -> int:
    """Read the database the running bot writes, as another process would."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchone()[0]


async def test_kill_9_mid_burst_then_restart_with_a_corrupt_index(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    spawn_bot: SpawnBot,
) -> None:
    settings = {**AI_SETTINGS, "gemini_api_key": "test-gemini-key"}
    settings["gemini_base_url"] = gemini_fake.url
    bot = await spawn_bot(**settings)
    fact = await discord_fake.send_message(
        guild.text, member, f"{mention(discord_fake)} my secret codeword is zebra"
    )
    await answered(discord_fake, fact)
    await discord_fake.wait_for(
        lambda: count(bot.database, "SELECT count(*) FROM memories WHERE text LIKE '%zebra%'"),
        timeout=15,
    )

    users = [member, *(discord_fake.add_user(f"user{i}") for i in range(2))]
    for user in users[1:]:
        guild.add_member(user, permissions=BASIC)
    channels = [guild.add_text_channel(f"burst-{i}") for i in range(4)]
    burst: list[FakeMessage] = []
    for round_ in range(3):
        for channel in channels:
            gemini_fake.reply(CHUNKS, chunk_delay=0.3)
            burst.append(
                await discord_fake.send_message(
                    channel, users[round_], f"{mention(discord_fake)} burst {round_}"
                )
            )

    def mid_burst() -> bool:
        replies = [r for m in burst for r in replies_to(discord_fake, m)]
        done = [r for r in replies if r.content == "".join(CHUNKS)]
        writing = [r for r in replies if r.content.endswith("⌛")]
        return len(done) >= len(channels) and len(writing) >= 2

    await discord_fake.wait_for(mid_burst, timeout=20)
    committed = count(bot.database, "SELECT count(*) FROM ai_messages")
    bot.kill()
    assert await bot.process.wait() == -signal.SIGKILL

    assert integrity(bot.database) == ("ok", [])
    assert count(bot.database, "SELECT count(*) FROM ai_messages") >= committed > 2
    scope = Scope("guild", guild.id)
    index_file = bot.data_dir / "memory" / scope.filename
    index_file.parent.mkdir(parents=True, exist_ok=True)
    index_file.write_bytes(bytes(range(256)) * 16)  # a torn or foreign file

    restarted = await spawn_bot(**settings)
    elsewhere = guild.add_text_channel("elsewhere")
    before = len(gemini_fake.requests)
    question = await discord_fake.send_message(
        elsewhere, member, f"{mention(discord_fake)} what is my secret codeword?"
    )
    assert (await answered(discord_fake, question)).content
    (request,) = [r for r in gemini_fake.requests[before:] if "secret codeword?" in str(r.json)]
    assert "zebra" in request.system_text, "remembered through the rebuilt index"
    assert "is unusable" in restarted.output() and "rebuilding it" in restarted.output()

    assert await restarted.terminate() < 10
    rebuilt = VectorIndex.load(index_file, {"scope": scope.key, "model": "hashing"})
    assert len(rebuilt) >= 1, "the rebuilt index was saved over the corrupt file"
    assert integrity(restarted.database) == ("ok", [])
