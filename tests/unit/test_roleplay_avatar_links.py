"""Avatar links: a character whose avatar cannot be posted again speaks without it.

The channel is a stub at our own seam (`AvatarLinks.avatar_url` takes any Messageable):
the fake Discord does not refuse attachments, so the refusal is raised here.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import discord
import pytest

from cogs.roleplay.avatar_links import AvatarLinks
from cogs.roleplay.characters import CharacterStore, Profile
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
