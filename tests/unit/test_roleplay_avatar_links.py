"""Avatar links: a character whose avatar cannot be posted again, or whose link Discord
fails to renew, still speaks; a link renewed while the avatar changed is not kept.

The channel is a stub at our own seam (`AvatarLinks.avatar_url` takes any Messageable):
the fake Discord neither refuses attachments nor fails, so refusals and failures are
raised here.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import discord
import pytest

from cogs.roleplay.avatar_links import AvatarLinks
from cogs.roleplay.characters import AvatarLink, CharacterStore, Profile
from utils.db import Database

if TYPE_CHECKING:
    from bot import Bot

GUILD = 1


class NoAttachFiles:
    """A channel where the bot may not attach files (Discord answers 403, 50013)."""

    async def send(self, *args: Any, **kwargs: Any) -> discord.Message:
        response = SimpleNamespace(status=403, reason="Forbidden")
        raise discord.Forbidden(response, {"code": 50013, "message": "Missing Permissions"})  # type: ignore[arg-type]


async def test_an_avatar_that_cannot_be_uploaded_gives_no_url(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = CharacterStore(db, limit=3)
    links = AvatarLinks(cast("Bot", None), store)  # no stored link: the bot is not asked
    character = await store.create(GUILD, 10, Profile("Aria"), b"png")
    with caplog.at_level(logging.WARNING, logger="cogs.roleplay.avatar_links"):
        url = await links.avatar_url(character, cast(discord.abc.Messageable, NoAttachFiles()))
    assert url is None
    assert f"avatar of character {character.id}" in caplog.text
    assert (await store.get(GUILD, "Aria")) == character  # no link remembered


class ResetChannel:
    """A channel whose upload meets a connection reset (what aiohttp raises then)."""

    async def send(self, *args: Any, **kwargs: Any) -> discord.Message:
        raise aiohttp.ServerDisconnectedError()


async def test_a_connection_reset_uploading_an_avatar_gives_no_url(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Like a Discord error, the character speaks without an avatar; before, the reset
    ended the turn (or `/scene start`'s opening lines) with "something went wrong"."""
    store = CharacterStore(db, limit=3)
    links = AvatarLinks(cast("Bot", None), store)
    character = await store.create(GUILD, 10, Profile("Aria"), b"png")
    with caplog.at_level(logging.WARNING, logger="cogs.roleplay.avatar_links"):
        url = await links.avatar_url(character, cast(discord.abc.Messageable, ResetChannel()))
    assert url is None
    assert f"could not upload the avatar of character {character.id}" in caplog.text
    assert (await store.get(GUILD, "Aria")) == character  # no link remembered


class FailingDiscord:
    """A bot whose requests for a message get Discord's 500."""

    def __init__(self) -> None:
        self.http = self

    async def get_message(self, channel_id: int, message_id: int) -> dict[str, Any]:
        response = SimpleNamespace(status=500, reason="Internal Server Error")
        raise discord.DiscordServerError(response, {"code": 0, "message": "500"})  # type: ignore[arg-type]


class Recording:
    """A channel that keeps what the bot posts in it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, *args: Any, **kwargs: Any) -> discord.Message:
        self.sent.append(args)
        raise AssertionError("nothing should be posted")


async def test_a_discord_outage_while_renewing_an_avatar_link_posts_nothing(
    db: Database,
) -> None:
    """The character still speaks: with the old URL while it works, else without an avatar;
    before, the 500 ended the reply."""
    store = CharacterStore(db, limit=3)
    now = 1_000_000.0
    links = AvatarLinks(cast("Bot", FailingDiscord()), store, clock=lambda: now)
    character = await store.create(GUILD, 10, Profile("Aria"), b"png")
    channel = Recording()
    for expiry, works in ((now + 60, True), (now - 60, False)):
        url = f"https://cdn.example.invalid/avatar.png?ex={int(expiry):x}"
        await store.set_link(character, AvatarLink(5, 6, url))
        linked = await store.get(GUILD, "Aria")
        assert linked is not None
        messageable = cast(discord.abc.Messageable, channel)
        assert await links.avatar_url(linked, messageable) == (url if works else None)
    assert channel.sent == []


class EditedWhileAsked:
    """A bot whose request for the avatar's message is answered only after the character
    got a new avatar (`/character edit`, its confirmation remembered meanwhile)."""

    def __init__(self, store: CharacterStore, new_link: AvatarLink) -> None:
        self.http = self
        self.store = store
        self.new_link = new_link

    async def get_message(self, channel_id: int, message_id: int) -> dict[str, Any]:
        character = await self.store.get(GUILD, "Aria")
        assert character is not None
        edited = await self.store.update(character, character.profile, b"new png")
        await self.store.set_link(edited, self.new_link)
        fresh = "https://cdn.example.invalid/old/avatar.png?ex=ffffffff"
        return {"attachments": [{"filename": "avatar.png", "url": fresh}]}


async def test_an_avatar_renewed_while_the_character_is_edited_does_not_come_back(
    db: Database,
) -> None:
    """The renewed link of the old avatar was stored over the new avatar's: the character
    spoke with its old avatar from then on."""
    store = CharacterStore(db, limit=3)
    new_link = AvatarLink(7, 8, "https://cdn.example.invalid/new/avatar.png?ex=ffffffff")
    links = AvatarLinks(cast("Bot", EditedWhileAsked(store, new_link)), store)
    made = await store.create(GUILD, 10, Profile("Aria"), b"old png")
    await store.set_link(made, AvatarLink(5, 6, "https://cdn.example.invalid/old/avatar.png?ex=1"))
    read = await store.get(GUILD, "Aria")  # as a turn reads its cast
    assert read is not None

    await links.avatar_url(read, cast(discord.abc.Messageable, Recording()))

    now = await store.get(GUILD, "Aria")
    assert now is not None and (now.avatar, now.link) == (b"new png", new_link)
