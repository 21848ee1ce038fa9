"""A channel at Discord's webhook limit, where a moderator makes room as the bot's notice
says: the real bot and discord.py against the fake Discord."""

from __future__ import annotations

import asyncio
from typing import cast

import discord

from cogs.roleplay.scene_cog import Scenes
from tests.conftest import ADMIN, BASIC, StartBot, eventually
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser


async def test_deleting_a_webhook_as_the_notice_says_gives_characters_their_names_again(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    others = [discord_fake.webhook_routes.add(guild.text, f"hook {i}", member) for i in range(15)]
    bot = await start_bot(extensions=["cogs.roleplay"])
    sender = cast(Scenes, bot.get_cog("Scenes")).sender
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)

    await sender.send(channel, "Hello", name="Alice", avatar_url=None)
    notice, fallback = discord_fake.messages_in(guild.text)
    assert "Deleting an unused webhook" in notice.content
    assert fallback.content == "**Alice**: Hello"

    changed = asyncio.create_task(bot.wait_for("webhooks_update"))
    discord_fake.webhook_routes.delete(others[0])
    await changed
    spoken = await sender.send(channel, "Thanks", name="Alice", avatar_url=None)

    message = discord_fake.messages[spoken.id]
    assert (message.author.name, message.content) == ("Alice", "Thanks")
    assert message.webhook_id is not None
    assert len(discord_fake.messages_in(guild.text)) == 3  # no second notice


async def test_granting_manage_webhooks_gives_characters_their_names_at_once(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    guild.add_member(discord_fake.bot_user, permissions=BASIC)
    bot = await start_bot(extensions=["cogs.roleplay"])
    sender = cast(Scenes, bot.get_cog("Scenes")).sender
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)

    await sender.send(channel, "One", name="Alice", avatar_url=None)
    notice, fallback = discord_fake.messages_in(guild.text)
    assert "Manage Webhooks" in notice.content and fallback.content == "**Alice**: One"

    guild.add_member(discord_fake.bot_user, permissions=ADMIN)
    await eventually(lambda: channel.permissions_for(channel.guild.me).manage_webhooks)
    spoken = await sender.send(channel, "Two", name="Alice", avatar_url=None)

    message = discord_fake.messages[spoken.id]
    assert (message.author.name, message.content) == ("Alice", "Two")
    assert message.webhook_id is not None and len(discord_fake.messages_in(guild.text)) == 3
