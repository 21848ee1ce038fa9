"""Costly commands have a per-user cooldown that covers their prefix and slash forms."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from tests.conftest import BASIC, StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser

EMPTY = "There is no conversation to export in this channel yet."


async def test_a_costly_command_used_again_too_soon_says_when_to_retry(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())
    for n in range(2):  # two exports a minute
        await discord_fake.send_message(guild.text, member, "!ai export")
        assert (await discord_fake.wait_for_message(guild.text, after=n)).content == EMPTY
    await discord_fake.send_message(guild.text, member, "!ai export")
    again = await discord_fake.wait_for_message(guild.text, after=2)
    assert again.content == "Slow down: try again in 60 s."

    interaction = await discord_fake.invoke_slash(guild.text, member, "ai", subcommand="export")
    response = await interaction.wait_response()
    assert response["data"]["content"].startswith("Slow down: try again in ")
    assert interaction.ephemeral

    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    interaction = await discord_fake.invoke_slash(guild.text, bob, "ai", subcommand="export")
    await interaction.wait_response()  # deferred: the answer follows
    (answer,) = await discord_fake.wait_for(lambda: interaction.followups)
    assert answer.content == EMPTY
