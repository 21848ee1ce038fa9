"""The AI plays music: "play some lo-fi" in chat → a play call → audio in the asker's
voice channel, through the real bot, discord.py and google-genai against the fakes.

The fake Gemini answers with function calls; each test checks what the bot sent back
as the function response and what the reply shows under its text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord
import pytest

from bot import Bot
from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.e2e.test_ai_chat import ask
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.spotify_server import FakeSpotify
from tests.fakes.voice_server import FakeVoiceServer

NO_CONNECT = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, read_message_history=True, speak=True
).value


@pytest.fixture
def settings(
    ai_settings: Callable[..., Settings], local_search: dict[str, tuple[str, str]]
) -> Callable[..., Settings]:
    """AI settings with local media allowed and the local yt-dlp search."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "music_allow_private_urls": True,
            "music_search_prefix": "localsearch",
            "music_resolve_timeout": 10.0,
            "ai_user_messages_per_minute": 60,
        }
        return ai_settings(**values | overrides)

    return make


async def call(
    fake: FakeDiscord,
    gemini: FakeGemini,
    guild: FakeGuild,
    user: FakeUser,
    name: str,
    args: dict[str, Any] | None = None,
    *,
    text: str = "Done.",
) -> tuple[dict[str, Any], str]:
    """`user` asks the AI; it calls tool `name` once, then says `text`. The function
    response the bot sent back, and the reply as shown."""
    gemini.reply_function_calls([(name, args or {})])
    gemini.reply(text)
    reply = await ask(fake, guild.text, user, f"please {name}")
    responded, answered = gemini.requests[-1].function_responses[-1]
    assert responded == name
    return answered, reply.content


def guild_of(bot: Bot, guild: FakeGuild) -> discord.Guild:
    found = bot.get_guild(guild.id)
    assert found is not None
    return found


def frames(fake: FakeDiscord, guild: FakeGuild, *, audio_only: bool = True) -> int:
    return len(fake.voice_frames(guild, audio_only=audio_only))


async def test_play_some_lofi_then_every_control(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    local_search: dict[str, tuple[str, str]],
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    title = "Lofi *beats* @everyone"
    local_search["lo-fi"] = (title, media_server.tone(440, 6, "ogg"))
    local_search["calm"] = ("Calm tone", media_server.tone(660, 2, "ogg"))
    bot = await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)

    played, reply = await call(
        discord_fake, gemini_fake, guild, member, "play", {"query": "some lo-fi"}, text="Enjoy!"
    )
    assert [track["title"] for track in played["queued"]] == [title]
    assert played["playing_now"] is True
    assert reply == "Enjoy!\n\n-# 🎵 queued *Lofi \\*beats\\* @\u200beveryone*"
    await discord_fake.wait_for(lambda: frames(discord_fake, guild) >= 25, timeout=10)
    assert discord_fake.voice_channel_of(discord_fake.bot_user, guild) == guild.voice.id
    assert voice_fake.undecryptable == 0

    queued, reply = await call(
        discord_fake, gemini_fake, guild, member, "play", {"query": "something calm"}
    )
    assert queued["playing_now"] is False and queued["queue_position"] == 1
    assert reply.endswith("-# 🎵 queued *Calm tone*")

    listing, reply = await call(discord_fake, gemini_fake, guild, member, "queue")
    assert listing["now_playing"]["title"] == title
    assert [track["title"] for track in listing["upcoming"]] == ["Calm tone"]
    assert listing["upcoming_total"] == 1 and listing["paused"] is False
    assert listing["loading"] is False
    assert reply == "Done.", "reading the queue shows no note"

    paused, reply = await call(discord_fake, gemini_fake, guild, member, "pause")
    assert paused == {"paused": True} and reply.endswith("-# ⏸️ paused")
    await discord_fake.wait_for(
        lambda: discord_fake.voice_frames(guild, audio_only=False)[-1].silence, timeout=10
    )
    stopped_at = frames(discord_fake, guild)
    current, _ = await call(discord_fake, gemini_fake, guild, member, "now_playing")
    assert current["title"] == title and current["paused"] is True
    assert current["loading"] is False
    assert frames(discord_fake, guild) == stopped_at, "no audio while paused"

    resumed, reply = await call(discord_fake, gemini_fake, guild, member, "resume")
    assert resumed == {"resumed": True} and reply.endswith("-# ▶️ resumed")
    await discord_fake.wait_for(lambda: frames(discord_fake, guild) > stopped_at + 10, timeout=5)

    skipped, reply = await call(discord_fake, gemini_fake, guild, member, "skip")
    assert skipped["skipped"]["title"] == title
    assert reply.endswith("-# ⏭️ skipped *Lofi \\*beats\\* @\u200beveryone*")
    music: Any = bot.get_cog("Music")  # not isinstance: other tests reload the module
    await eventually(lambda: music.playing(guild_of(bot, guild))[1].title == "Calm tone")
    now, _ = await call(discord_fake, gemini_fake, guild, member, "now_playing")
    assert now["title"] == "Calm tone"

    left, reply = await call(discord_fake, gemini_fake, guild, member, "leave")
    assert left == {"left": True, "queue_cleared": True}
    assert reply.endswith("-# 👋 left voice")
    await discord_fake.wait_for(lambda: not voice_fake.connected(guild.id), timeout=10)
    assert discord_fake.voice_channel_of(discord_fake.bot_user, guild) is None
    empty, _ = await call(discord_fake, gemini_fake, guild, member, "queue")
    assert empty == {"error": "The queue is empty."}


async def test_now_playing_says_the_track_is_still_loading(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    names = [media_server.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (440, 660)]
    media_server.held.add(names[1])
    await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)
    page = media_server.page_url(*names, title="Two tones")
    await call(discord_fake, gemini_fake, guild, member, "play", {"query": page})
    await eventually(lambda: names[1] in media_server.requests)
    now, _ = await call(discord_fake, gemini_fake, guild, member, "now_playing")
    assert now["title"] == "Two tones (2)" and now["loading"] is True
    listing, _ = await call(discord_fake, gemini_fake, guild, member, "queue")
    assert listing["now_playing"]["title"] == "Two tones (2)" and listing["loading"] is True
    media_server.release.set()
    left, _ = await call(discord_fake, gemini_fake, guild, member, "leave")
    assert left == {"left": True, "queue_cleared": True}


async def test_a_title_of_any_length_reaches_the_model_cut_short(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    local_search: dict[str, tuple[str, str]],
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    """A title is whatever a page's author wrote, megabytes even: the play result (which
    goes back to the model) and the queue carry it cut short."""
    local_search["long"] = ("Long title " * 10_000, media_server.tone(440, 2, "ogg"))
    await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)
    played, reply = await call(
        discord_fake, gemini_fake, guild, member, "play", {"query": "a long one"}
    )
    [track] = played["queued"]
    assert track["title"].startswith("Long title Long title") and len(track["title"]) <= 200
    assert "queued *Long title" in reply


async def test_a_spotify_name_of_any_length_reaches_the_model_cut_short(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    local_search: dict[str, tuple[str, str]],
    spotify_fake: FakeSpotify,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    """A Spotify track's or playlist's name is whatever its author wrote: the play result
    and the queue carry it cut short, as a yt-dlp title is."""
    songs = [spotify_fake.add_track("t1", "Band", "Long song " * 1_000)]
    spotify_fake.add_playlist("p1", "Long mix " * 1_000, songs)
    local_search["band"] = ("Band song", media_server.tone(440, 2, "ogg"))
    keys = {"spotipy_client_id": spotify_fake.client_id}
    await start_bot(settings(**keys, spotipy_client_secret=spotify_fake.client_secret))
    await discord_fake.join_voice(member, guild.voice)
    played, reply = await call(
        discord_fake, gemini_fake, guild, member, "play", {"query": "spotify:playlist:p1"}
    )
    [track] = played["queued"]
    assert track["title"].startswith("Band - Long song") and len(track["title"]) <= 200
    assert played["from"].startswith("Long mix Long mix") and len(played["from"]) <= 200
    assert " from *Long mix Long mix" in reply


async def test_play_refused_like_slash_play_when_the_asker_is_not_in_voice(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    await start_bot(settings())
    slash = await discord_fake.invoke_slash(guild.text, member, "play", {"query": "lo-fi"})
    refusal = (await slash.wait_response())["data"]["content"]
    assert refusal == "Join a voice channel first, then ask me again."

    answered, reply = await call(
        discord_fake,
        gemini_fake,
        guild,
        member,
        "play",
        {"query": "some lo-fi"},
        text="Join a voice channel first and I'll play it.",
    )
    assert answered == {"error": refusal}
    assert reply == "Join a voice channel first and I'll play it.", "no note: nothing was done"
    assert discord_fake.voice_state_updates == []


async def test_play_refused_when_the_bot_lacks_connect(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    guild.everyone.permissions &= ~discord.Permissions(connect=True).value
    guild.add_member(discord_fake.bot_user, permissions=NO_CONNECT)
    await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)

    slash = await discord_fake.invoke_slash(guild.text, member, "play", {"query": "lo-fi"})
    refusal = (await slash.wait_response())["data"]["content"]
    # Without Connect, Discord takes Speak away in voice channels too.
    assert refusal == f"I need the Connect and Speak permissions in <#{guild.voice.id}>."

    answered, _ = await call(
        discord_fake, gemini_fake, guild, member, "play", {"query": "some lo-fi"}
    )
    assert answered == {"error": refusal}
    assert discord_fake.voice_state_updates == [], "the bot never tried to join"


async def test_controls_refused_to_someone_outside_the_bots_voice_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    elsewhere = guild.add_voice_channel("Other")
    await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)
    await discord_fake.join_voice(bob, elsewhere)
    url = media_server.tone(440, 4, "ogg")
    slash = await discord_fake.invoke_slash(guild.text, member, "play", {"query": url})
    await slash.wait_response()
    await discord_fake.wait_for(lambda: frames(discord_fake, guild) >= 10, timeout=10)

    join_me = f"Join <#{guild.voice.id}> to control the music."
    for name in ("skip", "pause", "leave"):
        answered, _ = await call(discord_fake, gemini_fake, guild, bob, name)
        assert answered == {"error": join_me}
    answered, _ = await call(discord_fake, gemini_fake, guild, bob, "play", {"query": url})
    assert answered == {"error": f"I'm playing in <#{guild.voice.id}>; join me there."}
    before = frames(discord_fake, guild)
    await discord_fake.wait_for(lambda: frames(discord_fake, guild) > before + 10, timeout=5)
    assert discord_fake.voice_channel_of(discord_fake.bot_user, guild) == guild.voice.id


async def test_play_of_a_playlist_cut_to_the_askers_share_tells_the_model_so(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    """A playlist cut short (here to the asker's share, MUSIC_MAX_QUEUED_PER_MEMBER):
    the result says how many of how many were queued and why, so the model cannot tell
    the asker the whole playlist was queued."""
    names = [media_server.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (440, 660, 880)]
    page = media_server.page_url(*names, title="Three tones")
    await start_bot(settings(music_max_queued_per_member=2))
    await discord_fake.join_voice(member, guild.voice)
    slash = await discord_fake.invoke_slash(
        guild.text, member, "play", {"query": media_server.tone(440, 30, "ogg")}
    )
    await slash.wait_response()

    played, reply = await call(discord_fake, gemini_fake, guild, member, "play", {"query": page})
    assert played["count"] == 2 and played["asked_for"] == 3
    assert played["left_out"] == 1
    assert "one person may have waiting" in played["why_left_out"]
    assert reply.endswith("-# 🎵 queued 2 of 3 tracks from *Three tones*")


async def test_play_of_a_whole_playlist_says_nothing_was_left_out(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    names = [media_server.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (440, 660, 880)]
    page = media_server.page_url(*names, title="Three tones")
    await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)
    played, reply = await call(discord_fake, gemini_fake, guild, member, "play", {"query": page})
    assert played["count"] == 3 and played["asked_for"] == 3 and played["left_out"] == 0
    assert "why_left_out" not in played
    assert reply.endswith("-# 🎵 queued 3 tracks from *Three tones*")


async def test_a_title_or_playlist_name_that_is_a_link_does_not_unfurl_under_the_reply(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    local_search: dict[str, tuple[str, str]],
    start_bot: StartBot,
    settings: Callable[..., Settings],
) -> None:
    """Titles are written by others: one that is a web address is shown in <...> (no
    embed of that page under the reply), on one line, its pings still escaped."""
    local_search["link"] = (
        "https://example.com/x\n<@&123456789012345678>",
        media_server.tone(440, 8, "ogg"),
    )
    names = [media_server.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (660, 880)]
    page = media_server.page_url(*names, title="steam://run/42 @here")
    await start_bot(settings())
    await discord_fake.join_voice(member, guild.voice)

    _, reply = await call(discord_fake, gemini_fake, guild, member, "play", {"query": "a link"})
    shown = "*<https://example.com/x> <@\u200b&123456789012345678>*"
    assert reply == f"Done.\n\n-# 🎵 queued {shown}"
    _, reply = await call(discord_fake, gemini_fake, guild, member, "play", {"query": page})
    assert reply.endswith("-# 🎵 queued 2 tracks from *<steam://run/42> @\u200bhere*")
    await discord_fake.wait_for(lambda: frames(discord_fake, guild) >= 10, timeout=10)
    _, reply = await call(discord_fake, gemini_fake, guild, member, "skip")
    assert reply.endswith(f"-# ⏭️ skipped {shown}")
