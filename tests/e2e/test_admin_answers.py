"""The admin cog's answers to prefix commands where Discord refuses replies."""

from __future__ import annotations

from collections.abc import Callable

import discord
import pytest

from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_models import DEFAULT_PERMS
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser

READ_MESSAGE_HISTORY = discord.Permissions(read_message_history=True).value
EMBED_LINKS = discord.Permissions(embed_links=True).value


async def test_a_channel_whose_history_the_bot_may_not_read_still_gets_its_answers(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """Discord refuses a reply without Read Message History: the answer comes unreplied,
    and the owner's `!shutdown` still stops the bot."""
    bot = await start_bot()
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)  # no administrator
    bot_id = discord_fake.bot_user.id
    guild.set_overwrite(guild.text, bot_id, deny=READ_MESSAGE_HISTORY, member=True)

    def history_denied() -> bool:
        channel = bot.get_channel(guild.text.id)
        assert isinstance(channel, discord.TextChannel)
        return not channel.permissions_for(channel.guild.me).read_message_history

    await discord_fake.wait_for(history_denied)

    await discord_fake.send_message(guild.text, member, "!settings prefix $")
    refusal = await discord_fake.wait_for_message(guild.text)
    assert refusal.content == "You need the Manage Server permission to do that."
    await discord_fake.send_message(guild.text, discord_fake.owner, "!sync nowhere")
    usage = await discord_fake.wait_for_message(guild.text, after=1)
    assert usage.content.startswith("`scope` must be one of: guild, global, clear.")
    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload admin")
    reloaded = await discord_fake.wait_for_message(guild.text, after=2)
    assert reloaded.content == "Reloaded `cogs.admin`."

    await discord_fake.send_message(guild.text, discord_fake.owner, "!shutdown")
    said = await discord_fake.wait_for_message(guild.text, after=3)
    assert said.content == "Shutting down."
    await discord_fake.wait_for(bot.is_closed)


async def test_a_channel_where_the_bot_may_not_embed_gets_its_answers_as_text(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """Without Embed Links Discord drops a message's embeds and refuses the empty rest:
    `!stats` and `!help` answer in plain text there instead of saying nothing."""
    bot = await start_bot()
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)  # no administrator
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=EMBED_LINKS, member=True)

    def embeds_denied() -> bool:
        channel = bot.get_channel(guild.text.id)
        assert isinstance(channel, discord.TextChannel)
        return not channel.permissions_for(channel.guild.me).embed_links

    await discord_fake.wait_for(embeds_denied)

    await discord_fake.send_message(guild.text, member, "!stats")
    stats = await discord_fake.wait_for_message(guild.text)
    assert stats.content.startswith("**Bot stats**\n**Uptime**: ")
    assert "**Circuits**\n" in stats.content
    await discord_fake.send_message(guild.text, member, "!help ping")
    ping = await discord_fake.wait_for_message(guild.text, after=1)
    assert ping.content == "**!ping**\nShow the gateway latency and a REST round trip."
    await discord_fake.send_message(guild.text, member, "!help")
    listing = await discord_fake.wait_for_message(guild.text, after=2)
    assert listing.content.startswith("**Commands**\nUse `/` or the `!` prefix")
    assert "`stats` Show uptime" in listing.content
    assert not any(m.embeds for m in discord_fake.messages_in(guild.text.id, from_bot=True))


async def test_a_command_whose_message_is_deleted_at_once_still_gets_its_answer(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """A server whose moderation deletes command messages as they come: the answer that
    would reply to one comes unreplied, and `!shutdown` still stops the bot."""
    bot = await start_bot()
    asked = await discord_fake.send_message(guild.text, member, "!settings prefix $")
    discord_fake._delete_message(asked)
    refusal = await discord_fake.wait_for_message(guild.text)
    assert refusal.content == "You need the Manage Server permission to do that."

    asked = await discord_fake.send_message(guild.text, discord_fake.owner, "!shutdown")
    discord_fake._delete_message(asked)
    said = await discord_fake.wait_for_message(guild.text, after=1)
    assert said.content == "Shutting down."
    await discord_fake.wait_for(bot.is_closed)


async def test_help_on_a_group_lists_its_subcommands(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """`!ai` alone does nothing but list them: help that stops at the group's one line
    leaves its commands to be guessed."""
    await start_bot()
    await discord_fake.send_message(guild.text, member, "!help settings")
    settings = (await discord_fake.wait_for_message(guild.text)).embeds[0]
    assert settings["title"] == "!settings"
    assert settings["description"].splitlines() == [
        "Show this server's bot settings.",
        "",
        "`settings prefix` Change the command prefix for this server (Manage Server).",
    ]
    interaction = await discord_fake.invoke_slash(guild.text, member, "help", {"command": "ai"})
    ai = (await interaction.wait_response())["data"]["embeds"][0]
    assert "`ai autorespond` Answer every message" in ai["description"]


async def test_help_repeats_an_unknown_name_as_code_whatever_it_holds(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """A backtick typed in the name must not end the code span the bot shows it in: the
    rest would be the bot's own words, headings and masked links included."""
    await start_bot()
    await discord_fake.send_message(
        guild.text, member, "!help x`\n# Verify here: [link](https://e.x)"
    )
    unknown = await discord_fake.wait_for_message(guild.text)
    assert unknown.content == "No command called `x # Verify here: [link](https://e.x)`."


@pytest.mark.backends("sqlite")  # who is told, not the storage
async def test_help_explains_an_owner_command_to_the_owner_alone(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """`!help sync` told the owner there was no such command: owner commands are left
    out of the list (still so), not unknown to the one who may run them."""
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!help sync")
    explained = (await discord_fake.wait_for_message(guild.text)).embeds[0]
    assert explained["title"] == '!sync ["guild"|"global"|"clear"=guild]'
    await discord_fake.send_message(guild.text, member, "!help sync")
    unknown = await discord_fake.wait_for_message(guild.text, after=1)
    assert unknown.content == "No command called `sync`."


async def test_help_on_a_name_of_only_spaces_lists_the_commands(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    await start_bot()
    interaction = await discord_fake.invoke_slash(guild.text, member, "help", {"command": "  "})
    listing = (await interaction.wait_response())["data"]
    assert listing["embeds"][0]["title"] == "Commands", listing.get("content")


async def test_the_owner_can_take_a_servers_copies_of_the_slash_commands_off(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """DEV_GUILD_ID (or `sync guild`) copies every command to a server; once they are also
    global, that server lists each twice until its copies are taken off."""
    bot = await start_bot()  # with DEV_GUILD_ID: this server's
    await discord_fake.send_message(guild.text, discord_fake.owner, "!sync global")
    await discord_fake.wait_for_message(guild.text)
    assert discord_fake.commands[guild.id] and discord_fake.commands[None]

    await discord_fake.send_message(guild.text, discord_fake.owner, "!sync clear")
    cleared = await discord_fake.wait_for_message(guild.text, after=1)
    assert cleared.content == (
        "Took this server's copies of the slash commands off. They come back at the next"
        " start while DEV_GUILD_ID names this server."
    )
    assert discord_fake.commands[guild.id] == []
    assert any(command["name"] == "ping" for command in discord_fake.commands[None])
    await bot.close()

    await start_bot(make_settings(dev_guild_id=None))  # they stay off
    assert discord_fake.commands[guild.id] == []


async def test_shutdown_stops_the_bot_even_when_it_cannot_say_so(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    """The stop is what the owner asked for: a channel gone (or one the bot may not write
    in, or Discord failing the message) does not keep the bot running."""
    bot = await start_bot()
    doomed = guild.add_text_channel("doomed")
    await discord_fake.send_message(doomed, discord_fake.owner, "!shutdown")
    guild.delete_channel(doomed)
    await discord_fake.wait_for(bot.is_closed)
