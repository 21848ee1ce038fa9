"""Who controls the music (DJ role, vote-skip), autoplay and 24/7, end to end.

The same fakes as tests/e2e/test_music.py: the real client plays generated tones into
the fake voice server, driven through the fake Discord; YouTube's video and mix pages
are the local stand-in extractors of tests/fakes/youtube_extractors.py.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from config import Settings
from tests.conftest import BASIC, eventually
from tests.e2e.music_world import World, pitch
from tests.e2e.test_ai_tools_music import call
from tests.fakes.discord_server import FakeMessage, FakeRole, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.spotify_server import FakeSpotify
from tests.fakes.youtube_extractors import FakeYouTube, register_fake_youtube, watch_url

MANAGE_CHANNELS = 0x10
REFUSED = "Only people with the **DJ** role (or Manage Channels) can do that here."


@pytest.fixture
def youtube(local_search: dict[str, tuple[str, str]]) -> Iterator[FakeYouTube]:
    site, undo = register_fake_youtube()
    yield site
    undo()


async def set_dj(world: World, role: FakeRole | None) -> str:
    options: dict[str, Any] = {"role": role} if role is not None else {}
    interaction = await world.discord.invoke_slash(
        world.guild.text, world.discord.owner, "music", options, subcommand="dj"
    )
    return await world.reply(interaction)


def listener(world: World, name: str, permissions: int = BASIC, *, bot: bool = False) -> FakeUser:
    user = world.discord.add_user(name, bot=bot)
    world.guild.add_member(user, permissions=permissions)
    return user


async def press(world: World, message: FakeMessage, action: str, user: FakeUser) -> str:
    """Press a now-playing button; the ephemeral answer, or "" when the message was updated."""
    clicked = await world.press(message, action, user)
    response = await clicked.wait_response()
    return response.get("data", {}).get("content", "") if response["type"] != 7 else ""


# The DJ role ---------------------------------------------------------------------


async def test_dj_only_controls_are_refused_to_others(world: World) -> None:
    dj = world.guild.add_role("DJ")
    bot = await world.start()
    assert "Manage Server" in await set_dj_as(world, world.member, dj)
    assert (await set_dj(world, dj)).startswith("🎧 DJ role: **DJ**")
    moderator = listener(world, "mod", BASIC | MANAGE_CHANNELS)
    await world.discord.join_voice(moderator, world.guild.voice)

    # Anyone in the channel still adds tracks; the controls need the role.
    assert (await world.slash("play", query=world.media.tone(440, 20, "ogg"))).startswith("▶️")
    assert (await world.slash("play", query=world.media.tone(880, 1, "ogg"))).startswith("➕")
    message = await world.now_playing()
    await world.wait_frames(10)
    for command, options in [
        ("pause", {}),
        ("seek", {"position": "0:05"}),
        ("replay", {}),
        ("filter", {"effect": "bassboost"}),
        ("volume", {"percent": 50}),
        ("loop", {"mode": "track"}),
        ("shuffle", {}),
        ("remove", {"position": 1}),
        ("clear", {}),
        ("stop", {}),
    ]:
        assert await world.slash(command, **options) == REFUSED, command
    assert await press(world, message, "toggle", world.member) == REFUSED
    assert await press(world, message, "stop", world.member) == REFUSED
    assert message.embeds[0]["title"] == "Now playing", "the refused button changed nothing"
    assert world.voice.connected(world.guild.id)

    # Manage Channels is enough, by command and by button; so is the role.
    assert await press(world, message, "toggle", moderator) == ""
    assert message.embeds[0]["title"] == "Paused"
    assert (await world.slash("resume", moderator)).startswith("▶️ Resumed")
    world.guild.give_role(world.member, dj)
    assert (await world.slash("pause")).startswith("⏸️ Paused")
    assert await world.slash("volume", percent=50) == "🔊 Volume set to 50 %."

    # Off again: everyone in the channel controls.
    world.guild.take_role(world.member, dj)
    assert (await set_dj(world, None)).startswith("No DJ role")
    assert (await world.slash("resume")).startswith("▶️ Resumed")

    # A DJ role deleted on Discord lifts the rule rather than lock out all but moderators.
    assert (await set_dj(world, dj)).startswith("🎧 DJ role: **DJ**")
    assert await world.slash("pause") == REFUSED
    world.guild.delete_role(dj)
    await eventually(lambda: bot.get_guild(world.guild.id).get_role(dj.id) is None)
    assert (await world.slash("pause")).startswith("⏸️ Paused")


async def set_dj_as(world: World, user: FakeUser, role: FakeRole) -> str:
    interaction = await world.discord.invoke_slash(
        world.guild.text, user, "music", {"role": role}, subcommand="dj"
    )
    return await world.reply(interaction)


# Buttons that fail ---------------------------------------------------------------


@pytest.mark.backends("sqlite")
async def test_a_button_press_discord_refuses_to_answer_is_logged_in_one_line(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Answered too late (Discord no longer knows the interaction): one warning, no
    traceback; the player did what was asked."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    message = await world.now_playing()

    async def refused(self: discord.InteractionResponse, **kwargs: Any) -> None:
        raise discord.NotFound(
            SimpleNamespace(status=404, reason="Not Found"),  # type: ignore[arg-type]
            {"code": 10062, "message": "Unknown interaction"},
        )

    monkeypatch.setattr(discord.InteractionResponse, "edit_message", refused)
    await world.press(message, "toggle")
    warned = await world.discord.wait_for(
        lambda: [r for r in caplog.records if "could not answer the toggle button" in r.message]
    )
    assert len(warned) == 1 and warned[0].exc_info is None
    assert "Unknown interaction" in warned[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    await world.wait_paused()


@pytest.mark.backends("sqlite")
async def test_a_bug_behind_a_button_gets_the_presser_a_short_answer(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "This interaction failed" and discord.py's "Ignoring exception": a short
    answer for the presser alone, and the bug logged once."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    message = await world.now_playing()

    def broken(self: object) -> int:
        raise RuntimeError("a bug")

    # The module the bot loaded (each start imports the cog's modules afresh).
    monkeypatch.setattr(sys.modules["cogs.music.player"].Player, "shuffle", broken)
    pressed = await world.press(message, "shuffle")
    response = await pressed.wait_response()
    assert response["data"]["content"] == "Something went wrong on my side; try again in a moment."
    assert pressed.ephemeral
    await world.discord.wait_for(lambda: [r for r in caplog.records if r.exc_info])
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in logged] == [
        f"the shuffle button failed in guild {world.guild.id}"
    ], "logged once, by the bot"


@pytest.mark.backends("sqlite")
async def test_a_bug_behind_a_queue_page_button_gets_the_presser_a_short_answer(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tones = [world.media.tone(440 + n, 20, "ogg").rsplit("/", 1)[1] for n in range(12)]
    await world.start()
    await world.slash("play", query=world.media.page_url(*tones, title="Twelve"))
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    message = interaction.original
    assert message is not None

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sys.modules["cogs.music.views"], "queue_embed", broken)
    next_button = message.components[0]["components"][1]["custom_id"]
    pressed = await world.discord.click_button(message, next_button, world.member)
    response = await pressed.wait_response()
    assert response["data"]["content"] == "Something went wrong on my side; try again in a moment."
    assert pressed.ephemeral
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in logged] == ["a press of /queue's pages failed"]


# Votes to skip -------------------------------------------------------------------


async def test_skip_votes_need_more_than_half_of_the_listeners(world: World) -> None:
    dj = world.guild.add_role("DJ")
    await world.start()
    await set_dj(world, dj)
    bob, carol = listener(world, "bob"), listener(world, "carol")
    other_bot = listener(world, "jukebox", bot=True)
    for user in (bob, carol, other_bot):
        await world.discord.join_voice(user, world.guild.voice)
    first, second, third = (world.media.tone(f, 20, "ogg") for f in (440, 550, 660))
    for url in (first, second, third):
        await world.slash("play", query=url)  # all requested by alice
    await world.wait_frames(10)

    # 3 listeners (the other bot does not count): 1 vote is not enough, 2 are.
    assert await world.slash("skip", bob) == (
        "🗳️ 1/2 votes to skip tone-440hz-20s (more than half of the 3 listeners)."
    )
    assert (await world.slash("skip", bob)).startswith("🗳️ You voted already: 1/2 votes")
    assert await press(world, await world.now_playing(), "skip", carol) == (
        "⏭️ Skipped tone-440hz-20s (2/2 votes)."
    )
    await world.discord.wait_for(lambda: "550hz" in now_playing_title(world))

    # The votes were for the previous track; the requester skips their own at once.
    assert (await world.slash("skip", bob)).startswith("🗳️ 1/2 votes to skip tone-550hz-20s")
    assert await world.slash("skip") == "⏭️ Skipped tone-550hz-20s."
    await world.discord.wait_for(lambda: "660hz" in now_playing_title(world))


async def test_a_skip_vote_passes_when_listeners_who_did_not_vote_leave(world: World) -> None:
    dj = world.guild.add_role("DJ")
    await world.start()
    await set_dj(world, dj)
    bob, carol, dave = listener(world, "bob"), listener(world, "carol"), listener(world, "dave")
    for user in (bob, carol, dave):
        await world.discord.join_voice(user, world.guild.voice)
    for frequency in (440, 550):
        await world.slash("play", query=world.media.tone(frequency, 20, "ogg"))
    await world.wait_frames(10)

    # 4 listeners: 2 votes of the 3 needed; with dave gone, 2 of 3 listeners are enough.
    assert (await world.slash("skip", bob)).startswith("🗳️ 1/3 votes")
    assert (await world.slash("skip", carol)).startswith("🗳️ 2/3 votes")
    await world.discord.leave_voice(dave, world.guild)
    await world.wait_message("⏭️ Skipped tone-440hz-20s (2/2 votes).")
    await world.discord.wait_for(lambda: "550hz" in now_playing_title(world))


def now_playing_title(world: World) -> str:
    for message in reversed(world.discord.messages_in(world.guild.text)):
        if not message.deleted and message.embeds and message.components:
            return message.embeds[0]["description"]
    return ""


# Autoplay ------------------------------------------------------------------------


async def test_autoplay_plays_a_related_track_not_played_recently(
    world: World, youtube: FakeYouTube
) -> None:
    youtube.videos = {
        "seedseedsee": ("Seed song", world.media.tone(440, 1, "ogg"), 1),
        "heardheardh": ("Heard before", world.media.tone(550, 1, "ogg"), 1),
        "relatedrela": ("Related song", world.media.tone(660, 20, "ogg"), 20),
    }
    youtube.mixes = {"seedseedsee": ["seedseedsee", "heardheardh", "relatedrela"]}
    await world.start()
    assert await world.slash("autoplay", mode="on") == (
        "🔮 Autoplay is on: when the queue runs out, related tracks play."
    )
    await world.slash("play", query=watch_url("heardheardh"))
    await world.slash("play", query=watch_url("seedseedsee"))

    await world.discord.wait_for(lambda: "Related song" in now_playing_title(world), timeout=15)
    message = await world.now_playing()
    assert {"name": "Requested by", "value": "🔮 autoplay", "inline": True} in (
        message.embeds[0]["fields"]
    )
    queue = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(queue)
    assert queue.original is not None
    now_playing = queue.original.embeds[0]["description"].split("\n\n")[0]
    assert (
        now_playing.startswith("**Now playing**\n[Related song]") and "🔮 autoplay" in now_playing
    )
    await world.wait_frames(3 * 50 + 20)
    assert (await world.slash("skip")) == "⏭️ Skipped Related song."

    # Nothing related to the autoplayed track: it says so and the queue ends.
    await world.wait_message("Autoplay found nothing new to play")
    await world.wait_message("The queue is finished")
    heard, seed, related = world.played()
    pitches = [(pitch(heard), 550), (pitch(seed), 440), (pitch(related), 660)]
    assert all(abs(found - wanted) < 20 for found, wanted in pitches), pitches
    assert watch_url("seedseedsee") + "&list=RDseedseedsee" in youtube.requested

    assert (await world.slash("autoplay", mode="off")).startswith("Autoplay is off")
    seen = len(world.discord.messages_in(world.guild.text))
    mix = watch_url("seedseedsee") + "&list=RDseedseedsee"  # a Mix link: its video alone
    assert await world.slash("play", query=mix) == (
        "▶️ Playing Seed song. Only this video, not YouTube's endless mix."
    )
    await world.discord.wait_for_message(
        world.guild.text, predicate=lambda m: "queue is finished" in m.content, after=seen
    )
    assert len(world.played()) == 4, "off: no related track after the queue ran out"


async def test_autoplay_goes_on_past_a_related_track_that_fails(
    world: World, youtube: FakeYouTube
) -> None:
    youtube.videos = {
        "seedseedsee": ("Seed song", world.media.tone(440, 1, "ogg"), 1),
        "brokenbroke": ("Broken song", world.media.tone(550, 1, "ogg"), 1),
        "goodgoodgoo": ("Good song", world.media.tone(660, 1, "ogg"), 1),
    }
    youtube.unavailable = {"brokenbroke"}
    youtube.mixes = {"seedseedsee": ["seedseedsee", "brokenbroke", "goodgoodgoo"]}
    await world.start()
    await world.slash("autoplay", mode="on")
    await world.slash("play", query=watch_url("seedseedsee"))

    await world.wait_message("Skipped Broken song")
    await world.discord.wait_for(lambda: "Good song" in now_playing_title(world), timeout=15)
    await world.wait_message("The queue is finished")
    seed, good = world.played()
    assert abs(pitch(seed) - 440) < 20 and abs(pitch(good) - 660) < 20
    assert youtube.requested.count(watch_url("brokenbroke")) == 1, "not picked again"


async def test_autoplay_follows_a_spotify_track_by_the_video_it_played(
    world: World,
    youtube: FakeYouTube,
    spotify_fake: FakeSpotify,
    local_search: dict[str, tuple[str, str]],
) -> None:
    youtube.videos = {
        "seedseedsee": ("Seed song", world.media.tone(440, 1, "ogg"), 1),
        "relatedrela": ("Related song", world.media.tone(660, 1, "ogg"), 1),
    }
    youtube.mixes = {"seedseedsee": ["seedseedsee", "relatedrela"]}
    spotify_fake.add_track("t1", "Band", "Seed")
    local_search["band - seed"] = ("Seed song", watch_url("seedseedsee"))
    await world.start(
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    await world.slash("autoplay", mode="on")
    await world.slash("play", query="https://open.spotify.com/track/t1")
    await world.discord.wait_for(lambda: "Related song" in now_playing_title(world), timeout=15)
    await world.wait_message("The queue is finished")
    seed, related = world.played()
    assert abs(pitch(seed) - 440) < 20 and abs(pitch(related) - 660) < 20


async def test_autoplay_with_nothing_playing_follows_the_dj_rules_of_the_voice_channel(
    world: World,
) -> None:
    """As every control: Manage Channels counts in the voice channel (the asker's, with
    nothing playing), not in the text channel the command was typed in."""
    dj = world.guild.add_role("DJ")
    await world.start()
    await set_dj(world, dj)
    text, voice = world.guild.text, world.guild.voice
    world.guild.set_overwrite(text, world.member.id, allow=MANAGE_CHANNELS, member=True)
    assert await world.slash("autoplay", mode="on") == REFUSED
    world.guild.set_overwrite(voice, world.member.id, allow=MANAGE_CHANNELS, member=True)
    assert (await world.slash("autoplay", mode="on")).startswith("🔮 Autoplay is on")
    await world.discord.leave_voice(world.member, world.guild)
    assert await world.slash("autoplay", mode="off") == (
        "Join a voice channel first, then ask me again."
    )


# 24/7 ----------------------------------------------------------------------------


async def test_247_stays_idle_and_alone_and_comes_back_after_a_restart(world: World) -> None:
    """The barrier: a server without 24/7 leaves (idle, then alone) with the same short
    timeouts while the 24/7 one, idle and alone since before, stays."""
    fake, owner = world.discord, world.discord.owner
    other = fake.add_guild("Other")
    visitor = fake.add_user("visitor")
    other.add_member(visitor, permissions=BASIC)
    settings = world.settings(music_alone_timeout=0.5, music_idle_timeout=1.0)
    bot = await world.start(settings)
    assert await world.slash("247", world.member, mode="on") == (
        "You need the Manage Server permission to do that."
    )
    await fake.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith(
        f"🕒 24/7 is on: I stay in <#{world.guild.voice.id}>"
    )
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    await world.wait_message("The queue is finished")
    await fake.leave_voice(world.member, world.guild)
    await fake.leave_voice(owner, world.guild)  # idle and alone from here on

    async def in_other(text: str) -> None:
        await fake.send_message(other.text, visitor, text)

    async def other_says(text: str) -> None:
        await fake.wait_for_message(other.text, predicate=lambda m: text in m.content)

    await fake.join_voice(visitor, other.voice)
    await in_other(f"!play {world.media.tone(550, 1, 'ogg')}")
    await other_says("Nothing is playing, so I left")
    await in_other(f"!play {world.media.tone(550, 20, 'ogg')}")
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user, other) == other.voice.id)
    await fake.leave_voice(visitor, other)
    await other_says("Nobody is listening any more")

    assert fake.voice_channel_of(fake.bot_user, world.guild) == world.guild.voice.id
    assert world.voice.connected(world.guild.id)
    left = [m.content for m in fake.messages_in(world.guild.text) if "I left" in m.content]
    assert left == [], "the 24/7 server was never left"

    await bot.close()
    assert fake.voice_channel_of(fake.bot_user, world.guild) is None
    bot = await world.start_bot(settings)
    await fake.wait_for(
        lambda: fake.voice_channel_of(fake.bot_user, world.guild) == world.guild.voice.id
    )
    assert fake.voice_channel_of(fake.bot_user, other) is None, "only the 24/7 server"

    # Off again: alone, it leaves like anywhere else.
    assert (await world.slash("247", owner, mode="off")).startswith("24/7 is off")
    await world.wait_message("Nobody is listening any more")
    assert fake.voice_channel_of(fake.bot_user, world.guild) is None


async def test_a_moderator_disconnect_in_247_is_respected_until_someone_plays_again(
    world: World,
) -> None:
    """The bot does not fight a moderator's disconnect, even mid-track; the next /play
    brings it back, still in 24/7 mode: idle and alone since, it stays."""
    fake, owner = world.discord, world.discord.owner
    other = fake.add_guild("Other")
    visitor = fake.add_user("visitor")
    other.add_member(visitor, permissions=BASIC)
    settings = world.settings(music_alone_timeout=0.5, music_idle_timeout=1.0)
    await world.start(settings)
    await fake.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith("🕒 24/7 is on")
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    await world.wait_frames(20)
    identifies = world.voice.identifies

    await fake.disconnect_voice(fake.bot_user, world.guild)
    await world.wait_message("I was disconnected from the voice channel")
    await world.slash("queue")  # a later reply: any rejoin would have been asked for by now
    assert world.voice.identifies == identifies
    assert fake.voice_channel_of(fake.bot_user, world.guild) is None

    assert (await world.slash("play", query=world.media.tone(550, 1, "ogg"))).startswith("▶️")
    assert fake.voice_channel_of(fake.bot_user, world.guild) == world.guild.voice.id
    await fake.leave_voice(world.member, world.guild)
    await fake.leave_voice(owner, world.guild)  # idle and alone from here on
    # The barrier: a server without 24/7 leaves, with the same timeouts, idle then alone.
    await fake.join_voice(visitor, other.voice)
    await fake.send_message(other.text, visitor, f"!play {world.media.tone(550, 1, 'ogg')}")
    await fake.wait_for_message(other.text, predicate=lambda m: "I left" in m.content)
    assert fake.voice_channel_of(fake.bot_user, world.guild) == world.guild.voice.id


async def stay_channel(bot: Any, world: World) -> int | None:
    return (await bot.get_cog("Music").sessions.music_settings.get(world.guild.id)).stay_channel_id


async def test_a_play_from_another_channel_in_247_plays_there_then_goes_back_home(
    world: World,
) -> None:
    """24/7's channel is the owner's choice: a /play from another voice channel, while
    the bot idles alone at home, plays there, and once that channel empties the bot
    goes back home; the 24/7 channel stays the one /247 chose."""
    fake, owner = world.discord, world.discord.owner
    elsewhere = world.guild.add_voice_channel("Elsewhere")
    bot = await world.start()
    await fake.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith("🕒 24/7 is on")
    await fake.leave_voice(owner, world.guild)
    await fake.join_voice(world.member, elsewhere)

    assert (await world.slash("play", query=world.media.tone(440, 20, "ogg"))).startswith("▶️")
    assert fake.voice_channel_of(fake.bot_user, world.guild) == elsewhere.id
    await world.wait_frames(10)
    assert await stay_channel(bot, world) == world.guild.voice.id

    await fake.leave_voice(world.member, world.guild)
    await fake.wait_for(
        lambda: fake.voice_channel_of(fake.bot_user, world.guild) == world.guild.voice.id
    )
    assert await stay_channel(bot, world) == world.guild.voice.id


async def test_a_moderator_moving_the_bot_in_247_makes_that_its_channel(world: World) -> None:
    fake, owner = world.discord, world.discord.owner
    elsewhere = world.guild.add_voice_channel("Elsewhere")
    bot = await world.start(music_alone_timeout=0.5)
    await fake.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith("🕒 24/7 is on")
    await fake.leave_voice(owner, world.guild)
    await fake.leave_voice(world.member, world.guild)

    await fake.move_member_voice(fake.bot_user, elsewhere)
    await eventually(lambda: stay_channel(bot, world), equals=elsewhere.id)
    await world.slash("queue")  # a later reply: a move back would have been asked for by now
    assert fake.voice_channel_of(fake.bot_user, world.guild) == elsewhere.id


# The AI's music tools ----------------------------------------------------------------


async def test_the_ai_tools_follow_the_dj_rules(
    world: World, gemini_fake: FakeGemini, ai_settings: Callable[..., Settings]
) -> None:
    dj = world.guild.add_role("DJ")
    bob = listener(world, "bob")
    await world.start(
        ai_settings(
            music_allow_private_urls=True,
            music_search_prefix="localsearch",
            ai_user_messages_per_minute=60,
        )
    )
    await set_dj(world, dj)
    await world.discord.join_voice(bob, world.guild.voice)
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    await world.wait_frames(10)

    answered, _ = await call(world.discord, gemini_fake, world.guild, bob, "pause")
    assert answered == {"error": REFUSED}
    answered, _ = await call(world.discord, gemini_fake, world.guild, bob, "skip")
    assert answered["votes"] == 1 and answered["needed"] == 2
    answered, _ = await call(world.discord, gemini_fake, world.guild, world.member, "pause")
    assert answered == {"error": REFUSED}, "alice asked for the track but is no DJ"
    world.guild.give_role(bob, dj)
    answered, _ = await call(world.discord, gemini_fake, world.guild, bob, "pause")
    assert answered == {"paused": True}


async def test_a_visit_in_247_whose_home_channel_was_deleted_leaves_when_alone(
    world: World,
) -> None:
    """With the 24/7 channel gone there is no home to go back to: alone in the channel it
    was visiting, the bot leaves as it would without 24/7."""
    fake, owner = world.discord, world.discord.owner
    elsewhere = world.guild.add_voice_channel("Elsewhere")
    await world.start(music_alone_timeout=0.5)
    await fake.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith("🕒 24/7 is on")
    await fake.leave_voice(owner, world.guild)
    await fake.join_voice(world.member, elsewhere)
    assert (await world.slash("play", query=world.media.tone(440, 20, "ogg"))).startswith("▶️")
    assert fake.voice_channel_of(fake.bot_user, world.guild) == elsewhere.id
    world.guild.delete_channel(world.guild.voice)

    await fake.leave_voice(world.member, world.guild)
    await world.wait_message("Nobody is listening any more, so I left the voice channel.")
    assert fake.voice_channel_of(fake.bot_user, world.guild) is None


async def test_a_restart_after_the_247_channel_was_deleted_resumes_where_it_played(
    world: World,
) -> None:
    """The queue a visit played resumes in that channel (not dropped for the deleted 24/7
    one), and with no home to stay in, the bot leaves once nobody listens."""
    fake, owner = world.discord, world.discord.owner
    elsewhere = world.guild.add_voice_channel("Elsewhere")
    settings = world.settings(music_alone_timeout=0.5)
    bot = await world.start(settings)
    await fake.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith("🕒 24/7 is on")
    await fake.leave_voice(owner, world.guild)
    await fake.join_voice(world.member, elsewhere)
    assert (await world.slash("play", query=world.media.tone(440, 20, "ogg"))).startswith("▶️")
    await world.wait_frames(10)
    world.guild.delete_channel(world.guild.voice)
    await bot.close()

    await world.start_bot(settings)
    await world.wait_message("Back after a restart: resuming tone-440hz-20s")
    assert fake.voice_channel_of(fake.bot_user, world.guild) == elsewhere.id
    await fake.leave_voice(world.member, world.guild)
    await world.wait_message("Nobody is listening any more, so I left the voice channel.")


async def test_a_dj_role_named_in_several_words_is_taken_whole_without_quotes(
    world: World,
) -> None:
    """`!music dj Night Owls` sets the role "Night Owls", not "Night" (its first word)."""
    world.guild.add_role("Night")
    world.guild.add_role("Night Owls")
    await world.start()
    await world.discord.send_message(world.guild.text, world.discord.owner, "!music dj Night Owls")
    assert "DJ role: **Night Owls**" in (await world.wait_message("DJ role")).content
