"""AI server tools over several model turns of one reply: the asker as Discord has them
at each turn, through the real bot, discord.py and google-genai against the fakes."""

from __future__ import annotations

from collections.abc import Callable

import discord

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_ai_tools_server import UNLIMITED, server_on
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


async def test_a_role_taken_away_between_turns_of_one_reply_no_longer_counts(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A reply's turns can be minutes apart (the model thinks between them): a manager
    demoted after the first turn's change gets no second one, and one who then leaves
    gets nothing more done for them either."""
    manage = discord.Permissions(manage_channels=True).value
    managers = guild.add_role("Managers", manage, position=1)
    guild.give_role(member, managers)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    gemini_fake.reply_function_calls([("create_channel", {"name": "first"})])
    # The next turn comes a second later: the demotion lands between the two turns.
    gemini_fake.reply_function_calls([("create_channel", {"name": "second"})], chunk_delay=1.0)
    gemini_fake.reply_function_calls([("create_channel", {"name": "third"})], chunk_delay=1.0)
    gemini_fake.reply("Done.")
    sent = await discord_fake.send_message(
        guild.text, member, f"<@{discord_fake.bot_user.id}> make three channels"
    )

    def made(name: str) -> bool:
        return any(c.name == name for c in guild.channels.values())

    await discord_fake.wait_for(lambda: made("first"), timeout=15)
    guild.take_role(member, managers)  # demoted (no event without the members intent)
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) >= 3, timeout=15)
    guild.members.pop(member.id)  # and gone

    def finished() -> bool:
        replies = [m for m in discord_fake.messages_in(guild.text) if m.reference == sent.id]
        return bool(replies) and replies[0].content.startswith("Done.")

    await discord_fake.wait_for(finished, timeout=15)
    second, third = (request.function_responses[-1] for request in gemini_fake.requests[-2:])
    assert second == (
        "create_channel",
        {"refused": "alice needs the Manage Channels permission for that."},
    )
    assert third == ("create_channel", {"refused": "alice is no longer a member of this server."})
    assert made("first") and not made("second") and not made("third")
