"""URLs for character avatars that Discord can fetch (webhooks take an avatar URL).

The avatar bytes live in the database; to give them a URL, the bot posts the PNG
once as an attachment of its own message (the ``/character create`` or ``import``
confirmation, or a short "avatar of" message on first use) and remembers the message
and its attachment URL (:class:`~cogs.roleplay.characters.AvatarLink`). Discord's
attachment URLs are signed and expire (``ex=``: a hex unix time), so
:meth:`AvatarLinks.avatar_url` hands out the stored URL while it is good, else asks
Discord for the message again (which returns freshly signed URLs), else, when the
message is gone, uploads the avatar again in the channel it is needed in (through the
channel's webhook where slowmode would hold the bot's own message).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord

from cogs.roleplay.characters import AvatarLink, Character, CharacterStore
from cogs.roleplay.webhooks import DISCORD_TIMEOUT, Channel, WebhookSender
from utils.errors import BotError

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

AVATAR_FILE = "avatar.png"
REFRESH_MARGIN = 3600.0
"""A URL expiring within this many seconds is refreshed before it is handed out."""


def expires_at(url: str) -> float | None:
    """When a signed Discord CDN URL stops working (its ``ex`` parameter); None: never."""
    ex = parse_qs(urlsplit(url).query).get("ex")
    try:
        return float(int(ex[0], 16)) if ex else None
    except ValueError:
        return 0.0  # unreadable: treat as expired, so it is refreshed


def avatar_file(character: Character) -> discord.File:
    assert character.avatar is not None
    return discord.File(io.BytesIO(character.avatar), filename=AVATAR_FILE)


def link_of(message: discord.Message) -> AvatarLink | None:
    """The avatar attachment of a message the bot sent with :func:`avatar_file`."""
    for attachment in message.attachments:
        if attachment.filename == AVATAR_FILE:
            return AvatarLink(message.channel.id, message.id, attachment.url)
    return None


def may_attach(channel: discord.abc.Messageable) -> bool:
    """Whether the bot may attach files in `channel` (a server's channel or thread)."""
    if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return True
    return channel.permissions_for(channel.guild.me).attach_files


class AvatarLinks:
    """Hands out avatar URLs and keeps the stored link fresh."""

    def __init__(
        self, bot: Bot, store: CharacterStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.bot = bot
        self.store = store
        self.clock = clock

    async def remember(self, character: Character, message: discord.Message) -> None:
        """Use ``message`` (sent with :func:`avatar_file`) as the avatar's home."""
        link = link_of(message)
        if link is not None:
            await self.store.set_link(character, link)

    async def avatar_url(
        self, character: Character, channel: Channel, *, sender: WebhookSender | None = None
    ) -> str | None:
        """A URL of the character's avatar that works now; None without an avatar, or
        when it cannot be uploaded again or Discord fails (the webhook's own avatar is
        shown then).

        ``channel`` is where the avatar is uploaded again if its message is gone
        (the scene's channel, say); that costs one visible bot message. Through
        ``sender``'s webhook, as the bot, where given: where slowmode holds the bot's
        own messages (not the webhook's), the turn does not wait for it.
        """
        if character.avatar is None:
            return None
        link = character.link
        if link is not None and self._fresh(link.url):
            return link.url
        if link is not None:
            try:
                fresh = await self._refetch(link)
            except (
                discord.HTTPException,
                discord.RateLimited,
                aiohttp.ClientError,
                OSError,
                TimeoutError,
            ) as error:
                # Discord failing for now (a 5xx, a long rate limit, a connection reset):
                # the character speaks all the same, with the old URL while it works, and
                # no copy is posted.
                log.warning("could not renew the avatar of character %s: %r", character.id, error)
                return link.url if self._working(link.url) else None
            if fresh is not None:
                await self.store.set_link(character, fresh)
                return fresh.url
        if not may_attach(channel):  # else refused again on every turn
            return None
        text = f"Avatar of **{discord.utils.escape_markdown(character.name)}**"
        try:
            message = await self._upload(character, channel, text, sender)
        except (
            discord.HTTPException,
            discord.RateLimited,  # a long slowmode, say
            aiohttp.ClientError,
            OSError,
            TimeoutError,
            BotError,
        ) as error:  # no Attach Files there, say, a connection reset, a webhook moved
            log.warning("could not upload the avatar of character %s: %s", character.id, error)
            return None
        fresh = link_of(message)
        await self.store.set_link(character, fresh)
        return fresh.url if fresh is not None else None

    async def _upload(
        self, character: Character, channel: Channel, text: str, sender: WebhookSender | None
    ) -> discord.Message:
        if sender is not None:
            spoken = await sender.send_as_bot(channel, text, file=avatar_file(character))
            assert spoken.message is not None
            return spoken.message
        async with asyncio.timeout(DISCORD_TIMEOUT):
            return await channel.send(
                text,
                file=avatar_file(character),
                silent=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )

    def _fresh(self, url: str) -> bool:
        expiry = expires_at(url)
        return expiry is None or expiry - self.clock() > REFRESH_MARGIN

    def _working(self, url: str) -> bool:
        expiry = expires_at(url)
        return expiry is None or expiry > self.clock()

    async def _refetch(self, link: AvatarLink) -> AvatarLink | None:
        """The message's attachment again, freshly signed; None when it is gone."""
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                data = await self.bot.http.get_message(link.channel_id, link.message_id)
        except (discord.NotFound, discord.Forbidden):
            return None
        for attachment in data.get("attachments", []):
            if attachment.get("filename") == AVATAR_FILE:
                return AvatarLink(link.channel_id, link.message_id, attachment["url"])
        return None
