"""The gateway gone for seconds in the middle of a streamed reply: nothing lost, RESUME only.

The issue cut the gateway for 5 s during a streamed reply: the reply went on over REST,
what users said meanwhile was answered after the session RESUMEd, and the bot never
IDENTIFYed again. Here the outage is shorter (OUTAGE) to keep the suite fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.reliability.conftest import answered, mention, replies_to

# Model and gateway faults; storage is beside the point.
pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.backends("sqlite")]

OUTAGE = 3.0  # seconds without a gateway connection
STORY = [*(f"Sentence {i} of the story. " for i in range(11)), "The end."]


async def test_outage_mid_stream_loses_nothing_and_resumes(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply(STORY, chunk_delay=0.4)  # about 5 s of streaming
    bot = await start_bot(ai_settings(ai_edit_interval=0.2))
    other = guild.add_text_channel("other")
    story = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} story")
    reply = (await discord_fake.wait_for(lambda: replies_to(discord_fake, story)))[0]

    async with discord_fake.disconnected():
        question = await discord_fake.send_message(other, member, f"{mention(discord_fake)} hi?")
        command = await discord_fake.send_message(guild.text, discord_fake.owner, "!ping")
        edits = len(reply.edits)
        await asyncio.sleep(OUTAGE)
        assert len(reply.edits) > edits, "the reply kept streaming over REST"
        assert not replies_to(discord_fake, question), "nothing arrives without a gateway"

    await discord_fake.wait_for(lambda: discord_fake.resumes == 1, timeout=15)
    assert (await answered(discord_fake, story)).content == "".join(STORY)
    assert (await answered(discord_fake, question)).content == "ok"
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith("Pong!") and m.id > command.id
    )
    assert discord_fake.identifies == 1, "the session was resumed, not re-identified"
    assert [len(replies_to(discord_fake, m)) for m in (story, question)] == [1, 1]

    async def stored() -> list[str]:
        rows = await bot.db.fetchall(
            "SELECT content FROM ai_messages WHERE role = 'model' ORDER BY id"
        )
        return sorted(row["content"] for row in rows)

    await eventually(stored, equals=sorted(["".join(STORY), "ok"]))
