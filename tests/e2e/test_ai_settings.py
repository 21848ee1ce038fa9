"""The `/ai` settings commands end to end: what they say is what replies then follow."""

from __future__ import annotations

from collections.abc import Callable

import discord

from config import Settings
from tests.conftest import BASIC, StartBot
from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeUser

PROMPT_REPLACES = "A custom prompt set with `/ai prompt` replaces it here."
CHANNEL_PROMPT_REPLACES = "The custom prompt of this thread's channel replaces it"
MANAGE_HERE = discord.Permissions(manage_channels=True, manage_messages=True).value


async def _slash(fake: FakeDiscord, channel: FakeChannel, *path: str, **options: object) -> str:
    interaction = await fake.invoke_slash(
        channel, fake.owner, path[0], options or None, subcommand=list(path[1:])
    )
    return (await fake.answer(interaction)).content


async def test_choosing_a_persona_where_a_custom_prompt_applies_says_the_prompt_wins(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Replies follow a custom prompt over the persona: choosing a persona must not
    claim the channel (or a thread under it) now talks with it and leave it at that."""
    await start_bot(ai_settings())
    chosen = await _slash(discord_fake, guild.text, "ai", "persona", "set", name="pirate")
    assert chosen == "This channel now talks with **Captain Byte**."

    await _slash(discord_fake, guild.text, "ai", "prompt", text="Only talk about gardening.")
    chosen = await _slash(discord_fake, guild.text, "ai", "persona", "set", name="pirate")
    assert chosen.startswith("This channel now talks with **Captain Byte**.")
    assert chosen.endswith(PROMPT_REPLACES)

    thread = guild.add_thread(guild.text, "side talk", member)
    chosen = await _slash(discord_fake, thread, "ai", "persona", "set", name="pirate")
    assert chosen.startswith("This thread now talks with **Captain Byte**.")
    assert CHANNEL_PROMPT_REPLACES in chosen
    shown = await _slash(discord_fake, thread, "ai", "persona", "show")
    assert CHANNEL_PROMPT_REPLACES in shown


async def test_clearing_a_threads_prompt_says_it_still_follows_its_channels(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())
    thread = guild.add_thread(guild.text, "side talk", member)
    assert await _slash(discord_fake, thread, "ai", "prompt") == "Custom prompt cleared."

    await _slash(discord_fake, guild.text, "ai", "prompt", text="Only talk about gardening.")
    set_here = await _slash(discord_fake, thread, "ai", "prompt", text="Talk like a poet.")
    assert set_here == "Custom prompt set for this thread."
    cleared = await _slash(discord_fake, thread, "ai", "prompt")
    assert cleared.startswith("Custom prompt of this thread cleared; it still follows")
    assert await _slash(discord_fake, guild.text, "ai", "prompt") == "Custom prompt cleared."


async def test_a_prompt_of_only_spaces_clears_the_prompt_rather_than_set_a_blank_one(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A blank prompt would replace the persona with nothing."""
    await start_bot(ai_settings())
    await _slash(discord_fake, guild.text, "ai", "prompt", text="Only talk about gardening.")
    assert await _slash(discord_fake, guild.text, "ai", "prompt", text="   ") == (
        "Custom prompt cleared."
    )
    shown = await _slash(discord_fake, guild.text, "ai", "persona", "show")
    assert PROMPT_REPLACES not in shown


async def test_a_channels_ai_settings_follow_the_permissions_people_have_in_that_channel(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Who manages a channel is who Discord lets manage it there: a member allowed to in
    this channel only may set its AI up; a moderator denied it here may not, however
    much they manage elsewhere. In DMs the conversation is the person's own. A subcommand
    is found in any letter case, as a phone's keyboard may capitalise it."""
    moderator = discord_fake.add_user("mod")
    guild.add_member(moderator, permissions=BASIC | MANAGE_HERE)
    guild.set_overwrite(guild.text, member.id, allow=MANAGE_HERE, member=True)
    guild.set_overwrite(guild.text, moderator.id, deny=MANAGE_HERE, member=True)
    bot = await start_bot(ai_settings())
    asked = [
        (member, "!ai autorespond on", "Auto-respond is on in this channel."),
        (member, "!ai Persona SET pirate", "This channel now talks with **Captain Byte**."),
        (member, "!ai Reset", "Forgot this channel's conversation (0 messages)."),
        (moderator, "!ai autorespond off", "You need the Manage Channels permission to do that."),
        (moderator, "!ai safety low", "You need the Manage Channels permission to do that."),
        (moderator, "!ai reset", "You need the Manage Messages permission to do that."),
    ]
    for n, (user, text, answer) in enumerate(asked):
        await discord_fake.send_message(guild.text, user, text)
        assert (await discord_fake.wait_for_message(guild.text, after=n)).content == answer, text
    assert bot.chats.prefs.autoresponds(guild.text.id)

    dm = discord_fake.open_dm(moderator)
    await discord_fake.send_message(dm, moderator, "!ai persona set pirate")
    chosen = await discord_fake.wait_for_message(dm)
    assert chosen.content == "I now talk as **Captain Byte** in our conversation."
    await discord_fake.send_message(dm, moderator, "!ai reset")
    forgot = await discord_fake.wait_for_message(dm, after=1)
    assert forgot.content == "Forgot our conversation (0 messages)."
    await discord_fake.send_message(dm, moderator, "!ai autorespond on")
    only_in_servers = await discord_fake.wait_for_message(dm, after=2)
    assert only_in_servers.content == "This command only works in a server."


async def test_a_group_named_alone_lists_its_subcommands_in_the_order_they_are_defined(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The same list every run (the group's own set of commands has no order)."""
    await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, discord_fake.owner, "!ai")
    listed = await discord_fake.wait_for_message(guild.text)
    assert listed.content == (
        "Subcommands: `reset`, `autorespond`, `safety`, `status`, `tools`, `audit`, `model`, "
        "`export`, `summarize`, `persona`, `prompt`"
    )


async def test_settings_changed_in_a_thread_say_thread(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())
    thread = guild.add_thread(guild.text, "side talk", member)
    on = await _slash(discord_fake, thread, "ai", "autorespond", mode="on")
    assert on == "Auto-respond is on in this thread."
    assert await _slash(discord_fake, thread, "ai", "safety", level="off") == (
        "The safety filter is off in this thread."
    )
    assert await _slash(discord_fake, thread, "ai", "reset") == (
        "Forgot this thread's conversation (0 messages)."
    )
