"""The slash and prefix commands as Discord and users meet them: what a sync sends, what
`/help` lists where it is asked, answers within Discord's three seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from config import Settings
from tests.conftest import StartBot
from tests.e2e.music_world import World
from tests.fakes.discord_server import DEFERRED_CHANNEL_MESSAGE, FakeDiscord, FakeGuild, FakeUser

SUBCOMMAND, GROUP = 1, 2


def described(schema: list[dict[str, Any]], path: str = "") -> Iterator[tuple[str, dict]]:
    """Every command, subcommand and option of a synced schema, by its full name."""
    for entry in schema:
        name = f"{path} {entry['name']}".strip()
        yield name, entry
        yield from described(entry.get("options") or [], name)


@pytest.mark.backends("sqlite")
async def test_every_command_and_option_has_a_description_discord_takes(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Discord refuses a whole sync for one description out of 1-100 characters; a
    description is what the slash menu shows, so it says something, whole."""
    await start_bot(ai_settings())
    await discord_fake.wait_for(lambda: discord_fake.commands.get(guild.id))
    for name, entry in described(discord_fake.commands[guild.id]):
        description = entry["description"]
        assert 1 <= len(description) <= 100, name
        assert description != "…", f"{name} has no description of its own"
        if entry.get("type", SUBCOMMAND) in (SUBCOMMAND, GROUP):  # not an option
            assert description.endswith("."), f"{name}: {description!r} is cut short"
        choices = entry.get("choices") or []
        assert len(choices) <= 25, name
        assert all(1 <= len(c["name"]) <= 100 for c in choices), name


@pytest.mark.backends("sqlite")
async def test_numbers_out_of_a_commands_range_are_stopped_typed_or_slashed(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """Discord stops a slash number out of the range the command declares; typed, it gets
    a plain line naming the range (and a word that is no number, one naming the option),
    not discord.py's words."""
    await start_bot()
    options = dict(described(discord_fake.commands[guild.id]))
    assert (options["volume percent"]["min_value"], options["volume percent"]["max_value"]) == (
        0,
        200,
    )
    assert (options["filter speed"]["min_value"], options["filter speed"]["max_value"]) == (
        0.5,
        2.0,
    )
    typed = [
        ("!volume 500", "Pick a number from 0 to 200. Usage: `!volume [percent]`"),
        ("!filter speed 3", "Pick a number from 0.5 to 2. Usage: `!filter <"),
        ("!filter speed fast", "`speed` must be a number. Usage: `!filter <"),
    ]
    for count, (text, expected) in enumerate(typed):
        await discord_fake.send_message(guild.text, member, text)
        reply = await discord_fake.wait_for_message(guild.text, after=count)
        assert reply.content.startswith(expected), reply.content


@pytest.mark.backends("sqlite")
async def test_help_in_a_dm_lists_only_the_commands_that_work_there(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """Discord offers a server's commands in servers only, and typed in a DM they say so:
    the lists in a DM (`!help`, `!help <group>`, a group used alone) hold what works there."""
    await start_bot()
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "!help")
    (reply,) = await discord_fake.wait_for(lambda: discord_fake.messages_in(dm))
    listed = " ".join(f["value"] for embed in reply.embeds for f in embed["fields"])
    for works in ("ping", "help", "chat", "ai status", "ai persona set", "memory show"):
        assert f"`{works}`" in listed, works
    for server_only in (
        "play",
        "playlist list",
        "settings show",
        "settings prefix",
        "ai autorespond",
        "character list",
        "scene end",
        "memory stats",
    ):
        assert f"`{server_only}`" not in listed, server_only

    await discord_fake.send_message(dm, member, "!help ai")
    explained = (await discord_fake.wait_for_message(dm, after=1)).embeds[0]["description"]
    assert "`ai status`" in explained and "`ai autorespond`" not in explained
    await discord_fake.send_message(dm, member, "!ai")
    subcommands = (await discord_fake.wait_for_message(dm, after=2)).content
    assert "`status`" in subcommands and "`persona`" in subcommands
    assert "`autorespond`" not in subcommands and "`audit`" not in subcommands


@pytest.mark.backends("sqlite")  # storage is beside the point: its writer is held
async def test_commands_that_write_answer_while_the_database_is_busy(world: World) -> None:
    """A database busy with another write (SQLite has one writer) left these slash commands
    unanswered past Discord's three seconds: "The application did not respond"."""
    bot = await world.start()
    discord_fake, owner = world.discord, world.discord.owner
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    created = await discord_fake.invoke_slash(
        world.guild.text,
        owner,
        "character",
        {"name": "Hana", "description": "A fox"},
        subcommand="create",
    )
    assert "Hana" in await world.reply(created)
    asked = [
        (world.member, "playlist", ["save"], {"name": "Mix"}, "💾 Saved **Mix** (1 track)."),
        (world.member, "playlist", ["delete"], {"name": "Mix"}, "🗑️ Deleted **Mix**."),
        (world.member, "autoplay", None, {"mode": "on"}, "🔮 Autoplay is on"),
        (owner, "music", ["dj"], {}, "No DJ role"),
        (owner, "247", None, {"mode": "off"}, "24/7 is off"),
        (owner, "character", ["delete"], {"name": "Hana"}, "Deleted **Hana**."),
    ]
    interactions = []
    async with bot.db.transaction():  # another write, under way
        for user, name, subcommand, options, _ in asked:
            interaction = await discord_fake.invoke_slash(
                world.guild.text, user, name, options, subcommand=subcommand
            )
            response = await interaction.wait_response()
            assert response["type"] == DEFERRED_CHANNEL_MESSAGE, name
            interactions.append(interaction)
    for interaction, (*_, expected) in zip(interactions, asked, strict=True):
        (answer,) = await discord_fake.wait_for(lambda i=interaction: i.followups)
        assert answer.content.startswith(expected), answer.content


@pytest.mark.backends("sqlite")
async def test_a_quoted_playlist_name_typed_whole_is_the_name_without_its_quotes(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """A name of several words is quoted for the typed commands that take more after it;
    `!playlist` took the quotes as part of the name (as `!character show` reads them)."""
    await start_bot()
    for count, typed in enumerate(('"Road trip"', "\u201cRoad trip\u201d")):
        await discord_fake.send_message(guild.text, member, f"!playlist delete {typed}")
        missing = await discord_fake.wait_for_message(guild.text, after=count)
        assert missing.content == "You have no playlist called **Road trip** here."
    typed = await discord_fake.invoke_slash(
        guild.text, member, "playlist", {"name": "Road"}, subcommand="load", focused="name"
    )
    assert (await typed.wait_response())["type"] == 8, "the name is still completed"
