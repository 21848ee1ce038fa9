"""What a crash (kill -9, a power cut) leaves of the music: the database as it was last
written, which the next start resumes from (tests/reliability/test_sigterm.py restores it)."""

from __future__ import annotations

import sys

import pytest

from cogs.music.store import MusicStore, Session
from tests.conftest import eventually
from tests.e2e.music_world import FRAMES_PER_SECOND, World

pytestmark = pytest.mark.backends("sqlite")


async def test_a_crash_mid_track_has_where_it_played_saved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await world.start()
    # The module the bot loaded: an extension unloaded by an earlier test in this process
    # (a reload) is imported afresh, so the one imported above may no longer be the bot's.
    monkeypatch.setattr(sys.modules["cogs.music.voice_watch"], "SAVE_EVERY", 0.2)
    await world.slash("play", query=world.media.tone(440, 5, "ogg"))
    await world.wait_frames(FRAMES_PER_SECOND // 2)

    async def saved_past_its_start() -> bool:
        (session,) = await MusicStore(bot.db).load_all()
        return session.position >= 0.25  # not 0: the track's start

    await eventually(saved_past_its_start)
    # The periodic save writes the position alone: the queue's rows are not rewritten.
    store = sys.modules["cogs.music.store"].MusicStore
    whole_saves: list[int] = []
    save = store.save

    async def counted(self: MusicStore, session: Session) -> None:
        whole_saves.append(session.guild_id)
        await save(self, session)

    monkeypatch.setattr(store, "save", counted)
    (before,) = await MusicStore(bot.db).load_all()

    async def saved_further_on() -> bool:
        (session,) = await MusicStore(bot.db).load_all()
        return session.position > before.position

    await eventually(saved_further_on)
    assert whole_saves == []
