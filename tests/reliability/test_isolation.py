"""Two guilds and three DMs: no history or memory of one place reaches another.

tests/e2e/test_memory.py checks that a guild's memory stays out of another guild and
out of a DM. Here five places each hold a secret at once (the same person in two
guilds and in her DMs, two more people in theirs), and every place asks for it: each
gets its own secret, recalled from long-term memory, and never another's, whichever
direction the leak would take (DM to guild, guild to guild, DM to DM).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_request import GeminiRequest
from tests.fakes.gemini_server import FakeGemini
from tests.reliability.conftest import answered, mention

pytestmark = pytest.mark.reliability


async def say(
    fake: FakeDiscord, gemini: FakeGemini, channel: FakeChannel, user: FakeUser, text: str
) -> GeminiRequest:
    """Say `text` to the bot in `channel`; the Gemini request its reply came from."""
    before = len(gemini.requests)
    prefix = "" if channel.guild_id is None else f"{mention(fake)} "
    await answered(fake, await fake.send_message(channel, user, prefix + text))
    (request,) = gemini.requests[before:]
    return request


async def test_guilds_and_dms_never_share_history_or_memory(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    other = discord_fake.add_guild("Other Guild")
    bob, carol = discord_fake.add_user("bob"), discord_fake.add_user("carol")
    for server in (guild, other):
        server.add_member(member, permissions=BASIC)
        server.add_member(bob, permissions=BASIC)
    places = {  # where -> (the channel, who tells the secret there, the secret)
        "guild": (guild.text, member, "zebra"),
        "other guild": (other.text, member, "walrus"),
        "alice's DMs": (discord_fake.open_dm(member), member, "falcon"),
        "bob's DMs": (discord_fake.open_dm(bob), bob, "otter"),
        "carol's DMs": (discord_fake.open_dm(carol), carol, "lynx"),
    }
    bot = await start_bot(
        ai_settings(memory_enabled=True, embedding_model="hashing", memory_consolidation_minutes=0)
    )
    assert bot.memory is not None
    for channel, user, secret in places.values():
        await say(discord_fake, gemini_fake, channel, user, f"my secret codeword is {secret}")

    # Each exchange is queued for indexing after its last write, which follows the final edit.
    async def indexed() -> int:
        await bot.memory.flush()  # not the wait that batches exchanges under load
        return await bot.db.fetchval("SELECT count(*) FROM memories")

    await eventually(indexed, equals=len(places))

    # Ask where the history can't tell: a new channel of each guild, emptied DMs.
    asks: dict[str, tuple[FakeChannel, FakeUser, str]] = {
        "guild": (guild.add_text_channel("fresh"), member, "zebra"),
        "guild, asked by bob": (guild.add_text_channel("fresh-bob"), bob, "zebra"),
        "other guild": (other.add_text_channel("fresh"), member, "walrus"),
    }
    for where in ("alice's DMs", "bob's DMs", "carol's DMs"):
        channel, user, secret = places[where]
        await discord_fake.send_message(channel, user, "!ai reset")
        await discord_fake.wait_for_message(
            channel, predicate=lambda m: m.content.startswith("Forgot our conversation")
        )
        asks[where] = places[where]

    secrets = {secret for _, _, secret in places.values()}
    for where, (channel, user, secret) in asks.items():
        request = await say(discord_fake, gemini_fake, channel, user, "what's my secret codeword?")
        seen = json.dumps(request.json)
        assert secret in request.system_text, f"{where}: its own memory is recalled"
        assert secret not in json.dumps(request.contents), f"{where}: not from the history"
        leaked = {word for word in secrets - {secret} if word in seen}
        assert not leaked, f"{where} saw {leaked}"
