"""Controls while the next track is still loading (its source answers slowly), end to end."""

from __future__ import annotations

from typing import cast

import pytest

from bot import Bot
from cogs.music.buttons import OUT_OF_DATE
from cogs.music.cog import Music
from tests.conftest import eventually
from tests.e2e.music_world import World, pitch

SECOND = r"Three tones \(2\)"
"""The second track's title as the bot writes it (Markdown escaped)."""
pytestmark = pytest.mark.backends("sqlite")


async def three_tones(world: World) -> Bot:
    """Queue a page of three tones whose second one loads until the media server releases it."""
    names = [world.media.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (440, 660, 880)]
    world.media.held.add(names[1])
    bot = await world.start()
    reply = await world.slash("play", query=world.media.page_url(*names, title="Three tones"))
    assert reply == "➕ Queued 3 tracks from **Three tones**."
    await eventually(lambda: names[1] in world.media.requests)
    return bot


async def test_skip_while_the_next_track_loads(world: World) -> None:
    await three_tones(world)
    assert await world.slash("skip") == f"⏭️ Skipped {SECOND}."
    await world.wait_message("The queue is finished")
    world.media.release.set()
    assert [round(pitch(run), -1) for run in world.played()] == [440, 880]


async def test_the_buttons_of_the_track_that_ended_do_not_act_on_the_one_loading(
    world: World,
) -> None:
    await three_tones(world)
    message = await world.now_playing()
    pressed = await world.press(message, "skip")
    response = await pressed.wait_response()
    assert response["data"]["content"] == OUT_OF_DATE
    world.media.release.set()
    await world.wait_message("The queue is finished")
    assert [round(pitch(run), -1) for run in world.played()] == [440, 660, 880]


async def test_the_message_edited_while_a_track_loads_has_buttons_that_act_on_it(
    world: World,
) -> None:
    """/loop while the second track loads shows it on the message, with buttons of its own."""
    await three_tones(world)
    message = await world.now_playing()
    assert await world.slash("loop", mode="off") == "🔁 Loop: **off**."
    await world.discord.wait_for(lambda: message.embeds[0]["title"] == "Loading")
    assert SECOND in message.embeds[0]["description"]
    pressed = await world.press(message, "skip")
    response = await pressed.wait_response()
    assert response["data"]["content"] == f"⏭️ Skipped {SECOND}."
    await world.wait_message("The queue is finished")
    world.media.release.set()
    assert [round(pitch(run), -1) for run in world.played()] == [440, 880]


async def test_pause_while_the_next_track_loads(world: World) -> None:
    bot = await three_tones(world)
    assert await world.slash("pause") == f"⏸️ Paused {SECOND}."
    world.media.release.set()
    player = cast(Music, bot.get_cog("Music")).sessions.players[world.guild.id]
    await eventually(lambda: player.playing)
    assert player.paused, "it starts paused"
    assert await world.slash("resume") == f"▶️ Resumed {SECOND}."
    await world.wait_message("The queue is finished")
    assert [round(pitch(run), -1) for run in world.played()] == [440, 660, 880]


async def test_seek_while_a_playlist_entry_of_unknown_length_loads_says_so(world: World) -> None:
    """A page's entry learns its length as it loads: until then a seek can't be checked."""
    await three_tones(world)
    assert await world.slash("seek", position="0:01") == (
        f"{SECOND} is still loading; try again in a moment."
    )
    world.media.release.set()
    await world.wait_message("The queue is finished")
