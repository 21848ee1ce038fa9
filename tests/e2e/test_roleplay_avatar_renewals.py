"""A scene's turn renews its characters' avatar links at once, not one after another:
the real bot against the fake Discord (held) and the fake Gemini."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

import pytest

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_roleplay_scenes import World, scenes
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


@pytest.fixture
def scene_world(
    discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild, member: FakeUser
) -> World:
    return World(discord_fake, gemini_fake, guild, member)


async def test_a_turn_renews_its_characters_avatars_at_once_each_with_its_own_fallback(
    scene_world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each expired link was renewed in turn: with six characters and Discord slow, the
    reply waited for six renewals one after another. Now Discord is asked for all of them
    at once; each character keeps its own avatar, and one whose renewal fails speaks with
    the webhook's own."""
    world = scene_world
    bot = await start_bot(ai_settings())
    for name in ("Aria", "Bren", "Cato"):
        await world.character(name)
    await world.slash(member, "start", characters="Aria, Bren, Cato")
    store = scenes(bot).characters
    renewals: dict[str, tuple[str, str]] = {}
    for name in ("Aria", "Bren", "Cato"):
        character = await store.get(guild.id, name)
        assert character is not None and character.link is not None
        link = character.link
        await store.set_link(character, replace(link, url=link.url + "?ex=1"))  # expired
        renewals[name] = ("GET", f"/channels/{link.channel_id}/messages/{link.message_id}")
    # discord.py sends the first request of a route alone, to learn its rate limit (as it
    # has in a bot running for a while): one renewal's worth, before any is held.
    await bot.http.get_message(link.channel_id, link.message_id)
    release = asyncio.Event()
    discord_fake.holding[renewals["Aria"]] = release
    discord_fake.holding[renewals["Bren"]] = release
    discord_fake.dropping.add(renewals["Cato"])  # a connection reset: Cato's fallback

    def asked() -> set[tuple[str, str]]:
        return {(r.method, r.path) for r in discord_fake.requests} & set(renewals.values())

    with caplog.at_level(logging.WARNING):
        playing = asyncio.create_task(world.play("hello"))
        # All three asked while the first two are held: one after another, only Aria's was.
        await discord_fake.wait_for(lambda: asked() == set(renewals.values()), 10)
        release.set()
        aria, bren, _ = await playing
    assert (aria.author.name, bren.author.name) == ("Aria", "Bren")
    for message in (aria, bren):
        renewed = await store.get(guild.id, message.author.name)
        assert renewed is not None and renewed.link is not None
        assert message.avatar_url == renewed.link.url and "ex=" not in renewed.link.url
    assert aria.avatar_url != bren.avatar_url
    cato = await store.get(guild.id, "Cato")
    assert cato is not None
    assert f"could not renew the avatar of character {cato.id}" in caplog.text
