"""Music end to end in a thread archived while it plays: the progress bar waits for it
to reopen, and a leave from another channel reopens it to delete the card."""

from __future__ import annotations

import pytest

from tests.e2e.music_world import World

pytestmark = pytest.mark.backends("sqlite")  # threads, not storage


async def test_the_progress_bar_goes_on_once_its_archived_thread_is_reopened(
    world: World,
) -> None:
    """Nothing in an archived thread can be edited: the bar waits, and moves again once a
    message there (anyone's) reopens the thread."""
    bot = await world.start(music_progress_interval=1.0)
    thread = world.guild.add_thread(world.guild.text, "tunes", world.member)
    played = await world.discord.invoke_slash(
        thread, world.member, "play", {"query": world.media.tone(440, 20, "ogg")}
    )
    await world.reply(played)
    card = await world.discord.wait_for_message(thread, predicate=lambda m: bool(m.components))
    requests = world.discord.requests
    edit = ("PATCH", f"/channels/{thread.id}/messages/{card.id}")
    thread.archived = True
    world.guild.channel_updated(thread)
    await world.discord.wait_for(lambda: bot.get_channel(thread.id) is None)
    await world.discord.wait_for(lambda: any((r.method, r.path) == edit for r in requests))
    edits = len(card.edits)
    thread.archived = False  # someone wrote there
    world.guild.channel_updated(thread)
    await world.discord.wait_for(lambda: len(card.edits) > edits)


async def test_stopping_from_elsewhere_reopens_the_archived_thread_to_delete_the_card(
    world: World,
) -> None:
    """/stop in another channel: a note in the card's archived thread reopens it, so the
    card (with its dead buttons) can go."""
    bot = await world.start()
    thread = world.guild.add_thread(world.guild.text, "tunes", world.member)
    played = await world.discord.invoke_slash(
        thread, world.member, "play", {"query": world.media.tone(440, 20, "ogg")}
    )
    await world.reply(played)
    card = await world.discord.wait_for_message(thread, predicate=lambda m: bool(m.components))
    thread.archived = True
    world.guild.channel_updated(thread)
    await world.discord.wait_for(lambda: bot.get_channel(thread.id) is None)
    assert await world.slash("stop") == "⏹️ Stopped the music and cleared the queue."
    note = await world.discord.wait_for_message(thread, predicate=lambda m: "stopped" in m.content)
    assert note.content == "⏹️ The music was stopped and the queue cleared."
    await world.discord.wait_for(lambda: card.deleted)


async def test_music_moving_out_of_an_archived_thread_reopens_it_to_delete_the_card(
    world: World,
) -> None:
    """/play from another channel moves the music messages there: the next card goes there,
    and a note in the archived thread reopens it so its old card can go."""
    bot = await world.start()
    thread = world.guild.add_thread(world.guild.text, "tunes", world.member)
    played = await world.discord.invoke_slash(
        thread, world.member, "play", {"query": world.media.tone(440, 1, "ogg")}
    )
    await world.reply(played)
    card = await world.discord.wait_for_message(thread, predicate=lambda m: bool(m.components))
    thread.archived = True
    world.guild.channel_updated(thread)
    await world.discord.wait_for(lambda: bot.get_channel(thread.id) is None)
    await world.slash("play", query=world.media.tone(660, 2, "ogg"))
    note = await world.discord.wait_for_message(thread, predicate=lambda m: "now" in m.content)
    assert note.content == f"🎶 Music messages go to <#{world.guild.text.id}> now."
    await world.discord.wait_for(lambda: card.deleted)
