"""SIGTERM to `python bot.py` during a reply and during playback: a quick, clean exit.

The issue measured ~4 s from SIGTERM to exit, with the music queue saved and restored
on the next start. tests/e2e/test_foundation.py stops an idle bot; these stop a busy
one (assert < 10 s for slow CI machines) and start it again on the same data.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.voice_server import FakeVoiceServer, runs
from tests.reliability.conftest import TOKEN, SpawnBot, integrity, mention, replies_to

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

EXIT_WITHIN = 10.0  # seconds; the issue saw ~4
FRAMES_PER_SECOND = 50


async def test_sigterm_during_a_streamed_reply_exits_quickly_and_cleanly(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    spawn_bot: SpawnBot,
) -> None:
    gemini_fake.reply([f"Sentence {i} of a long answer. " for i in range(30)], chunk_delay=0.5)
    bot = await spawn_bot(
        gemini_api_key="test-gemini-key",
        gemini_base_url=gemini_fake.url,
        ai_edit_interval=0.2,
        memory_enabled="false",
    )
    sent = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} talk")
    await discord_fake.wait_for(
        lambda: any(m.content.endswith("⌛") for m in replies_to(discord_fake, sent)), timeout=15
    )

    elapsed = await bot.terminate(EXIT_WITHIN)
    print(f"SIGTERM during a reply: exited in {elapsed:.1f} s")
    assert bot.process.returncode == 0, bot.output()[-3000:]
    assert integrity(bot.database) == ("ok", [])
    assert TOKEN not in bot.output()
    assert "Traceback" not in bot.output(), bot.output()[-3000:]


async def test_sigterm_during_playback_saves_the_queue_and_restores_it(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    spawn_bot: SpawnBot,
) -> None:
    long_tone, short_tone = media_server.tone(440, 4, "ogg"), media_server.tone(880, 1, "ogg")
    music = {"music_allow_private_urls": "true", "music_resolve_timeout": 10}
    bot = await spawn_bot(**music)
    await discord_fake.join_voice(member, guild.voice)
    for url in (long_tone, short_tone):
        await discord_fake.send_message(guild.text, member, f"!play {url}")
    await discord_fake.wait_for(lambda: len(discord_fake.voice_frames(guild)) >= 75, timeout=20)

    elapsed = await bot.terminate(EXIT_WITHIN)
    print(f"SIGTERM during playback: exited in {elapsed:.1f} s")
    assert bot.process.returncode == 0, bot.output()[-3000:]
    assert integrity(bot.database) == ("ok", [])
    with sqlite3.connect(bot.database) as conn:
        saved = conn.execute("SELECT title FROM music_tracks ORDER BY slot").fetchall()
    assert [title for (title,) in saved] == ["tone-440hz-4s", "tone-880hz-1s"]
    heard = len(discord_fake.voice_frames(guild))
    mark = len(discord_fake.voice_frames(guild, audio_only=False))

    await spawn_bot(**music)
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "Back after a restart: resuming" in m.content
    )
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith("The queue is finished"), timeout=20
    )
    resumed, last = runs(discord_fake.voice_frames(guild, audio_only=False)[mark:])
    assert abs(heard + len(resumed) - 4 * FRAMES_PER_SECOND) < 40, "resumed where it stopped"
    assert abs(len(last) - FRAMES_PER_SECOND) < 15, "then played the rest of the queue"
