"""How the bot reads what people type: prefixes in any letter case, arguments it cannot use."""

from __future__ import annotations

import pytest

from tests.conftest import StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser


async def test_a_prefix_of_letters_works_in_any_case_as_command_names_do(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """A phone capitalises the first letter of a message: `G!ping` for the prefix `g!`."""
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!settings prefix g!")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "g!" in m.content)
    for typed in ("G!ping", "G!PING", "g!Ping"):
        sent = await discord_fake.send_message(guild.text, member, typed)
        # "Pinging…" first, edited into the answer once the REST round trip is timed.
        reply = await discord_fake.wait_for_message(
            guild.text, predicate=lambda m, sent=sent: m.id > sent.id and m.content != "Pinging…"
        )
        assert reply.content.startswith("Pong!"), (typed, reply.content)


async def test_the_bots_own_role_works_as_a_prefix_as_a_mention_of_the_bot_does(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """README: mentioning the bot always works as a prefix. Typing @ and its name, Discord
    offers its role beside it: `@Gembot ping` that way went to the AI as a chat message."""
    bot_role = guild.add_member(discord_fake.bot_user, managed=True).roles[0]
    await start_bot()
    await discord_fake.send_message(guild.text, member, f"<@&{bot_role.id}> ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)
    await discord_fake.send_message(guild.text, member, f"<@&{bot_role.id}> queue abc")
    usage = await discord_fake.wait_for_message(guild.text, after=1)
    name = discord_fake.bot_user.name
    assert usage.content == f"`page` must be a whole number. Usage: `@{name} queue [page=1]`"


async def test_a_number_argument_that_is_no_number_is_named_in_plain_words(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """Not discord.py's `Converting to "int" failed for parameter "page".`"""
    await start_bot()
    asked = [
        ("!queue abc", "`page` must be a whole number. Usage: `!queue [page=1]`"),
        ("!volume 1e3", "`percent` must be a whole number. Usage: `!volume [percent]`"),
    ]
    for n, (typed, expected) in enumerate(asked):
        await discord_fake.send_message(guild.text, member, typed)
        reply = await discord_fake.wait_for_message(guild.text, after=n)
        assert reply.content == expected


@pytest.mark.backends("sqlite")  # how help reads a name, not how the prefix is stored
async def test_help_names_a_command_as_it_runs_and_no_more(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """`help G!ping` (the prefix `g!` as a phone capitalises it) explains `ping`, as
    `G!ping` runs it; `help ping extra` names no command (it is not `ping`); `help "ai
    persona"` is `ai persona`."""
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!settings prefix g!")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "g!" in m.content)
    await discord_fake.send_message(guild.text, member, "g!help G!ping")
    ping = await discord_fake.wait_for_message(guild.text, after=1)
    assert ping.embeds[0]["title"] == "g!ping"
    await discord_fake.send_message(guild.text, member, "g!help ping extra")
    unknown = await discord_fake.wait_for_message(guild.text, after=2)
    assert unknown.content == "No command called `ping extra`."
    await discord_fake.send_message(guild.text, member, "g!help settings show")
    fallback = await discord_fake.wait_for_message(guild.text, after=3)
    assert fallback.embeds[0]["title"] == "g!settings"
    # Typed commands take the rest of the line as it is: quotes around a name of two words.
    await discord_fake.send_message(guild.text, member, 'g!help "ai persona"')
    quoted = await discord_fake.wait_for_message(guild.text, after=4)
    assert quoted.embeds[0]["title"].startswith("g!ai persona")
    await discord_fake.send_message(guild.text, member, "g!help \u201csettings show\u201d")
    curly = await discord_fake.wait_for_message(guild.text, after=5)
    assert curly.embeds[0]["title"] == "g!settings"
