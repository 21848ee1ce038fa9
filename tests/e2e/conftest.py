"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from config import Settings
from tests.conftest import StartBot
from tests.e2e.music_world import World
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.voice_server import FakeVoiceServer


@pytest.fixture
def world(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    start_bot: StartBot,
    music_settings: Callable[..., Settings],
) -> World:
    return World(discord_fake, guild, member, voice_fake, media_server, start_bot, music_settings)
