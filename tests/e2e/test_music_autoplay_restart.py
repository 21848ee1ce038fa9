"""A track autoplay chose is still autoplay's after a restart, end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.music_world import World
from tests.fakes.discord_server import FakeMessage
from tests.fakes.youtube_extractors import FakeYouTube, register_fake_youtube, watch_url

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def youtube(local_search: dict[str, tuple[str, str]]) -> Iterator[FakeYouTube]:
    site, undo = register_fake_youtube()
    yield site
    undo()


def showing(world: World, title: str) -> FakeMessage | None:
    """The now-playing message (one with buttons) of ``title``, if there is one."""
    for message in reversed(world.discord.messages_in(world.guild.text)):
        if message.components and title in message.embeds[0]["description"]:
            return message
    return None


async def test_an_autoplayed_track_resumes_as_autoplays_after_a_restart(
    world: World, youtube: FakeYouTube
) -> None:
    youtube.videos = {
        "seedseedsee": ("Seed song", world.media.tone(440, 1, "ogg"), 1),
        "relatedrela": ("Related song", world.media.tone(660, 20, "ogg"), 20),
    }
    youtube.mixes = {"seedseedsee": ["seedseedsee", "relatedrela"]}
    settings = world.settings()
    bot = await world.start(settings)
    await world.slash("autoplay", mode="on")
    await world.slash("play", query=watch_url("seedseedsee"))
    await world.discord.wait_for(lambda: showing(world, "Related song"), timeout=15)
    await bot.close()

    await world.start(settings)
    await world.wait_message("Back after a restart: resuming Related song")
    message = await world.discord.wait_for(lambda: showing(world, "Related song"))
    assert {"name": "Requested by", "value": "🔮 autoplay", "inline": True} in (
        message.embeds[0]["fields"]
    )
