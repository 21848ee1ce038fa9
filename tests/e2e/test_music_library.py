"""Music history and saved playlists end to end: played tracks are remembered per
server across restarts, and a member's saved queue plays again from /playlist load."""

from __future__ import annotations

from typing import Any

from tests.e2e.music_world import World, pitch
from tests.fakes.discord_server import FakeDiscord, FakeMessage, FakeUser
from tests.fakes.voice_server import runs


async def command(
    world: World, path: str, user: FakeUser | None = None, **options: Any
) -> FakeMessage:
    """Run ``/path`` (``"playlist save"``) and return the bot's answer, embeds included."""
    name, *sub = path.split()
    interaction = await world.discord.invoke_slash(
        world.guild.text, user or world.member, name, options, subcommand=sub
    )
    await world.reply(interaction)
    assert interaction.original is not None
    return interaction.original


async def queue_finished(world: World, after: int) -> None:
    await world.discord.wait_for_message(
        world.guild.text,
        predicate=lambda m: "queue is finished" in m.content,
        after=after,
        timeout=30,
    )


async def test_history_remembers_played_tracks_newest_first_across_restarts(
    world: World, discord_fake: FakeDiscord
) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    assert (await command(world, "history")).content == "Nothing has been played here yet."
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    await world.slash("play", query=world.media.tone(880, 1, "ogg"))
    await queue_finished(world, after=0)
    await bot.close()

    await world.start(settings)
    lines = (await command(world, "history")).embeds[0]["description"].splitlines()
    assert lines[0].startswith("`1.` [tone-880hz-1s]") and "<t:" in lines[0]
    assert lines[1].startswith("`2.` [tone-440hz-1s]")

    mark = len(discord_fake.messages_in(world.guild.text))
    for number in range(11):  # more than a page
        await world.slash("play", query=world.media.tone(300 + number, 1, "ogg"))
    await queue_finished(world, after=mark)
    message = await command(world, "history")
    assert message.embeds[0]["footer"]["text"] == "Page 1/2 · 13 tracks"
    click = await discord_fake.click_button(
        message, message.components[0]["components"][1]["custom_id"], world.member
    )
    await click.wait_response()
    await discord_fake.wait_for(lambda: message.embeds[0]["footer"]["text"].startswith("Page 2/2"))
    assert message.embeds[0]["description"].splitlines()[-1].startswith("`13.` [tone-440hz-1s]")


async def test_a_queue_of_one_track_is_counted_as_one_track(
    world: World, discord_fake: FakeDiscord
) -> None:
    await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(10)
    saved = await command(world, "playlist save", name="Solo")
    assert saved.content == "💾 Saved **Solo** (1 track)."
    listed = await command(world, "playlist list")
    assert listed.embeds[0]["description"] == "• **Solo** (1 track)"


async def test_a_saved_queue_loads_and_plays_again_for_its_owner_only(
    world: World, discord_fake: FakeDiscord
) -> None:
    bot = await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.slash("play", query=world.media.tone(880, 1, "ogg"))
    await world.wait_frames(10)
    saved = await command(world, "playlist save", name="  Evening   mix ")
    assert saved.content == "💾 Saved **Evening mix** (2 tracks)."
    assert (await world.slash("stop")).startswith("⏹️")

    listed = await command(world, "playlist list")
    assert listed.embeds[0]["description"] == "• **Evening mix** (2 tracks)"
    other = discord_fake.add_user("bob")
    world.guild.add_member(other)
    assert (await command(world, "playlist list", user=other)).content.startswith(
        "You have no playlists here"
    )
    refused = await command(world, "playlist load", user=other, name="Evening mix")
    assert refused.content == "Join a voice channel first, then ask me again."
    await discord_fake.join_voice(other, world.guild.voice)
    refused = await command(world, "playlist load", user=other, name="Evening mix")
    assert refused.content == "You have no playlist called **Evening mix** here."

    mark = len(world.frames(audio_only=False))
    loaded = await command(world, "playlist load", name="evening MIX")
    assert loaded.content == "➕ Queued 2 tracks from **Evening mix**."
    await world.wait_message("The queue is finished", within=15)
    first, second = runs(world.frames(audio_only=False)[mark:])
    assert abs(pitch(first) - 440) < 15 and abs(pitch(second) - 880) < 20

    assert (await command(world, "playlist save", name="x" * 51)).content == (
        "Keep playlist names to 50 characters."
    )
    deleted = await command(world, "playlist delete", name="EVENING mix")
    assert deleted.content == "🗑️ Deleted **Evening mix**.", "the name it was saved under"
    assert (await command(world, "playlist list")).content.startswith("You have no playlists")

    empty = await command(world, "playlist save", name="kept")
    assert empty.content == "There's nothing in the queue to save."
    deleted = await bot.data_owners.delete_guild(world.guild.id)
    assert deleted["music-library"] == 2, "440 (stopped, then again: once), 880; no playlist"
    assert (await command(world, "history")).content == "Nothing has been played here yet."


async def test_a_saved_playlist_longer_than_the_queue_takes_says_how_much_was_queued(
    world: World,
) -> None:
    await world.start(music_playlist_limit=2)
    for frequency in (440, 550, 660):
        await world.slash("play", query=world.media.tone(frequency, 3, "ogg"))
    saved = await command(world, "playlist save", name="Three")
    assert saved.content == "💾 Saved **Three** (3 tracks)."
    assert (await world.slash("stop")).startswith("⏹️")
    loaded = await command(world, "playlist load", name="Three")
    assert loaded.content == (
        "➕ Queued 2 of 3 tracks from **Three**: that's the most one playlist adds at a time."
    )
    assert (await world.slash("stop")).startswith("⏹️")


async def test_a_saved_playlist_loads_only_as_much_as_the_loaders_share(world: World) -> None:
    await world.start(music_max_queued_per_member=2)
    for frequency in (440, 550, 660):
        await world.slash("play", query=world.media.tone(frequency, 3, "ogg"))
    assert (await command(world, "playlist save", name="Three")).content.startswith("💾 Saved")
    assert (await world.slash("stop")).startswith("⏹️")
    loaded = await command(world, "playlist load", name="Three")
    assert loaded.content == (
        "➕ Queued 2 of 3 tracks from **Three**: "
        "that's as many as one person may have waiting in the queue here."
    )
