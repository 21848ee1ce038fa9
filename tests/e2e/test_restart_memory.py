"""What a crash (kill -9, a power cut) leaves of memory: the database as it was last
written. What people had forgotten must be written down there at once, not when
background work gets to it, or the next start may learn it again."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_ai_tools_memory import call
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


async def test_the_exchange_that_forgot_all_is_noted_before_a_crash_could_lose_it(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The exchange in which someone has the AI forget all about them is never to be read
    for facts: that is noted as soon as it is stored, not once the indexer's batch (up to
    20 s away) comes, so consolidation after a crash meanwhile does not read it."""
    bot = await start_bot(ai_settings(memory_enabled=True, embedding_model="hashing"))
    await call(discord_fake, gemini_fake, guild.text, member, [], text="Hi.")  # indexed at once
    await call(discord_fake, gemini_fake, guild.text, member, [("forget", {"target": "all"})])
    asked = await bot.db.fetchall(
        "SELECT id FROM ai_messages WHERE channel_id = ? ORDER BY id", (guild.text.id,)
    )

    async def noted() -> list[int]:
        rows = await bot.db.fetchall("SELECT turn_id FROM memory_forgotten_turns ORDER BY 1")
        return [row[0] for row in rows]

    assert await eventually(noted, within=3) == [row[0] for row in asked[2:]]
