"""Speaking as a character: messages sent and edited through one webhook per channel.

`WebhookSender` (one per bot) owns the webhooks it speaks through: created on first use
in a channel, or found among the channel's webhooks the bot made before a restart, and
kept in a bounded LRU cache; a thread speaks through its parent's webhook (`thread=`).
A channel's WEBHOOKS_UPDATE (one of its webhooks made, edited, moved or deleted) drops
its cached webhook (`forget_channel`). A webhook someone deleted (10015), or moved to
another channel unseen (the message lands elsewhere: it is deleted there; sent to a
thread, it is refused with 10003 Unknown Channel), is looked up again once and the
message resent. An edit whose webhook was deleted or moved meanwhile (a moved one no
longer finds its message: 10008, or 10003 in a thread) continues in a new message from
the channel's webhook, the old one deleted. Where the bot cannot have a webhook (Manage
Webhooks missing, or the channel's or the server's webhook limit, 30007 or 30058)
characters speak as the bot with their name in bold (`webhook_names`), after one notice
to the channel; webhooks are tried again after `RETRY_AFTER`, at its next
WEBHOOKS_UPDATE (any channel's, for the server's limit), or once Manage Webhooks is
granted. Nothing sent pings anyone.

The webhooks are discord.py objects bound to the bot's connection state, so they use its
HTTP session and discord.py's webhook rate-limit handling (429s are waited out).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import discord

from cogs.roleplay.webhook_names import in_bold, webhook_username
from utils.errors import BotError

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

Channel: TypeAlias = discord.TextChannel | discord.VoiceChannel | discord.Thread
Spoken: TypeAlias = discord.WebhookMessage | discord.Message

WEBHOOK_NAME = "Gembot characters"
CACHE_SIZE = 1000  # channels whose webhook (or its absence) is remembered
RETRY_AFTER = 600.0  # seconds before a channel without a webhook is tried again
DISCORD_TIMEOUT = 30.0  # seconds for one call to Discord, 429 waits included

UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
MAX_WEBHOOKS = 30007
MAX_GUILD_WEBHOOKS = 30058
MISSING_PERMISSIONS = 50013
NO_PINGS = discord.AllowedMentions.none()
NOTICES = {
    MISSING_PERMISSIONS: (
        "I need the **Manage Webhooks** permission here to give characters their own "
        "names and avatars; until then they speak as me, with their names in bold."
    ),
    MAX_WEBHOOKS: (
        "This channel has reached Discord's limit of webhooks, so characters speak as me "
        "with their names in bold. Deleting an unused webhook (channel settings → "
        "Integrations) gives them their own names and avatars."
    ),
    MAX_GUILD_WEBHOOKS: (
        "This server has reached Discord's limit of webhooks, so characters speak as me "
        "with their names in bold. Deleting unused webhooks (server settings → "
        "Integrations → Webhooks) gives them their own names and avatars."
    ),
}


MOVED = "My character webhook here was just moved; please try again."


class _Moved(BotError):
    """Our webhook of a channel spoke in another: a moderator moved it meanwhile."""


class SpokenMessage:
    """One message a character sent; `edit` keeps it in character (a `streaming.Editable`).

    If the webhook behind it was deleted or moved away, the edit is sent as a new message
    that later edits change instead."""

    def __init__(
        self, sender: WebhookSender, channel: Channel, name: str, avatar_url: str | None
    ) -> None:
        self._sender = sender
        self.channel = channel
        self.name = name
        self.avatar_url = avatar_url
        self.message: Spoken | None = None

    @property
    def id(self) -> int:
        assert self.message is not None, "not sent yet"
        return self.message.id

    async def edit(self, *, content: str) -> None:
        self.message = await self._sender._edit(self, content)


class WebhookSender:
    """Sends and edits messages as named characters (see the module docstring)."""

    def __init__(self, bot: Bot, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self.clock = clock
        # channel id -> our webhook there, most recently used last
        self._webhooks: OrderedDict[int, discord.Webhook] = OrderedDict()
        # channel id -> when to try a webhook again, why not, and its server; it was told
        self._without: OrderedDict[int, tuple[float, int, int]] = OrderedDict()
        # channel id -> its lookup or creation, one at a time (no duplicate webhooks);
        # a lock lasts while someone holds or awaits it, and one channel's slow lookup
        # keeps no other channel waiting.
        self._lookups: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def send(
        self,
        channel: Channel,
        content: str,
        *,
        name: str,
        avatar_url: str | None,
        file: discord.File | None = None,
        silent: bool = False,
    ) -> SpokenMessage:
        """Post `content` in `channel` (or thread) as the character `name`, with `file`
        attached, without a notification if `silent`."""
        spoken = SpokenMessage(self, channel, name, avatar_url)
        spoken.message = await self._deliver(spoken, content, file, silent=silent)
        return spoken

    async def send_as_bot(
        self, channel: Channel, content: str, *, file: discord.File | None = None
    ) -> SpokenMessage:
        """`send` as the bot (its name and avatar), a file silently: slowmode holds the
        bot's own messages, not its webhook's."""
        me = channel.guild.me
        name, avatar = me.display_name, me.display_avatar.url
        return await self.send(
            channel, content, name=name, avatar_url=avatar, file=file, silent=file is not None
        )

    async def edit_after_restart(
        self, channel: Channel, message: discord.Message, content: str
    ) -> bool:
        """Edit `message`, which a character sent in `channel` before a restart; False if
        the webhook that sent it is not ours (any more). Creates no webhook: a new one
        could not edit it."""
        webhook = await self._find(channel)
        if webhook is None or webhook.id != message.webhook_id:
            return False
        thread = channel if isinstance(channel, discord.Thread) else discord.utils.MISSING
        async with asyncio.timeout(DISCORD_TIMEOUT):
            await webhook.edit_message(
                message.id, content=content, thread=thread, allowed_mentions=NO_PINGS
            )
        return True

    def forget_channel(self, channel_id: int, guild_id: int) -> None:
        """Look the webhook of `channel_id` up again before its next message: one of the
        channel's webhooks was made, edited, moved or deleted (WEBHOOKS_UPDATE). Without
        one there, try again now (room made, as the notice asked); told once already.
        So too in every channel of the server that met the server's webhook limit."""
        self._webhooks.pop(channel_id, None)
        for home, (_, code, guild) in list(self._without.items()):
            if home == channel_id or (code == MAX_GUILD_WEBHOOKS and guild == guild_id):
                self._without[home] = (self.clock(), code, guild)

    async def _deliver(
        self,
        spoken: SpokenMessage,
        content: str,
        file: discord.File | None = None,
        *,
        silent: bool = False,
    ) -> Spoken:
        """A new message; a webhook someone deleted or moved away is replaced once."""
        try:
            return await self._send_once(spoken, content, file, silent)
        except discord.NotFound as error:
            if error.code != UNKNOWN_WEBHOOK:
                raise
        except _Moved:
            pass
        return await self._send_once(spoken, content, file, silent)

    async def _send_once(
        self, spoken: SpokenMessage, content: str, file: discord.File | None, silent: bool
    ) -> Spoken:
        webhook = await self._webhook_for(spoken.channel)
        if file is not None:
            file.reset()  # read from its start again if a first try read it
        if webhook is None:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                return await spoken.channel.send(
                    in_bold(spoken.name, content),
                    file=file or discord.utils.MISSING,
                    silent=silent,
                    allowed_mentions=NO_PINGS,
                )
        thread = spoken.channel if isinstance(spoken.channel, discord.Thread) else None
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                message = await webhook.send(
                    content,
                    username=webhook_username(spoken.name),
                    avatar_url=spoken.avatar_url or discord.utils.MISSING,
                    thread=thread or discord.utils.MISSING,
                    file=file or discord.utils.MISSING,
                    silent=silent,
                    allowed_mentions=NO_PINGS,
                    wait=True,
                )
        except discord.HTTPException as error:
            if error.code == UNKNOWN_WEBHOOK:
                log.info("webhook %s of channel %s was deleted", webhook.id, spoken.channel.id)
                self._forget(spoken.channel, webhook.id)
            elif error.code == UNKNOWN_CHANNEL and thread is not None:
                # Discord knows no such thread in the webhook's channel: it was moved away
                # from the thread's parent unseen. Nothing was sent.
                log.info("webhook %s of channel %s was moved", webhook.id, _home(thread))
                self._forget(thread, webhook.id)
                raise _Moved(MOVED) from error
            raise
        if message.channel.id != spoken.channel.id:
            await self._take_back(spoken.channel, webhook, message)
            raise _Moved(MOVED)
        return message

    async def _take_back(
        self, channel: Channel, webhook: discord.Webhook, message: discord.WebhookMessage
    ) -> None:
        """`message` landed in another channel: our webhook was moved there while the
        update that says so was missed (a reconnect, say). It goes from there, and the
        webhook of `channel` is looked up again."""
        log.info(
            "webhook %s of channel %s was moved to %s", webhook.id, channel.id, message.channel.id
        )
        self._forget(channel, webhook.id)
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                await message.delete()
        except (discord.HTTPException, TimeoutError) as error:
            log.warning(
                "could not delete message %s sent in the wrong channel: %r", message.id, error
            )

    async def _edit(self, spoken: SpokenMessage, content: str) -> Spoken:
        message = spoken.message
        assert message is not None
        if not isinstance(message, discord.WebhookMessage):
            async with asyncio.timeout(DISCORD_TIMEOUT):
                return await message.edit(
                    content=in_bold(spoken.name, content), allowed_mentions=NO_PINGS
                )
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                return await message.edit(content=content, allowed_mentions=NO_PINGS)
        except discord.NotFound as error:
            if error.code == UNKNOWN_WEBHOOK:
                self._forget(spoken.channel, message.webhook_id)
            elif error.code not in (UNKNOWN_MESSAGE, UNKNOWN_CHANNEL) or not await self._moved(
                spoken.channel, message.webhook_id
            ):
                raise
        replacement = await self._deliver(spoken, content)
        # The history follows the reply to its new message before the old one goes: that
        # deletion, heard back from Discord, would take the reply out of it.
        await self.bot.chats.replace_message(spoken.channel.id, message.id, replacement.id)
        await self._remove_orphan(spoken.channel, message)
        return replacement

    async def _moved(self, channel: Channel, webhook_id: int | None) -> bool:
        """Whether the webhook `webhook_id`, whose message in `channel` Discord no longer
        finds, has left the channel (moved to another: a webhook edits only in its own),
        rather than the message been deleted."""
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                webhooks = await _parent(channel).webhooks()
        except discord.Forbidden:  # Manage Webhooks taken away: no telling
            return False
        if any(webhook.id == webhook_id for webhook in webhooks):
            return False
        log.info("webhook %s of channel %s was moved", webhook_id, _home(channel))
        self._forget(channel, webhook_id)
        return True

    async def _remove_orphan(self, channel: Channel, message: Spoken) -> None:
        """The part of a reply that its webhook, deleted or moved, can no longer edit goes,
        if the bot may delete it (Manage Messages); the reply continued in a new message."""
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                await channel.get_partial_message(message.id).delete()
        except (discord.HTTPException, TimeoutError) as error:
            log.info("left message %s, whose webhook went: %r", message.id, error)

    async def _webhook_for(self, channel: Channel) -> discord.Webhook | None:
        """Our webhook for `channel` (its parent's for a thread), None where we can't
        have one for now."""
        home = _home(channel)
        if (webhook := self._cached(home)) is not None:
            return webhook
        without = self._without.get(home)
        if (  # Manage Webhooks granted since, as the notice asked: tried at once
            without is not None
            and self.clock() < without[0]
            and (without[1] != MISSING_PERMISSIONS or not may_make_webhooks(channel))
        ):
            return None
        lock = self._lookups.get(home)
        if lock is None:
            lock = self._lookups[home] = asyncio.Lock()
        async with lock:
            if (webhook := self._cached(home)) is not None:
                return webhook
            try:
                async with asyncio.timeout(DISCORD_TIMEOUT):
                    webhook = await self._find_or_create(channel)
            except discord.HTTPException as error:
                if error.code not in NOTICES:
                    raise
                await self._go_without(channel, home, error.code)
                return None
            self._without.pop(home, None)
            self._webhooks[home] = webhook
            if len(self._webhooks) > CACHE_SIZE:
                self._webhooks.popitem(last=False)
            return webhook

    async def _find_or_create(self, channel: Channel) -> discord.Webhook:
        if (webhook := await self._find(channel)) is not None:
            return webhook
        parent = _parent(channel)
        log.info("creating the character webhook of channel %s", parent.id)
        return await parent.create_webhook(name=WEBHOOK_NAME, reason="Roleplay characters")

    async def _find(self, channel: Channel) -> discord.Webhook | None:
        """The webhook the bot made in `channel` (its parent for a thread), if any."""
        me = self.bot.user
        for webhook in await _parent(channel).webhooks():
            mine = webhook.user is not None and me is not None and webhook.user.id == me.id
            if mine and webhook.token is not None:
                return webhook
        return None

    async def _go_without(self, channel: Channel, home: int, code: int) -> None:
        """Fall back to bold names in `home` for a while; say why the first time."""
        first = home not in self._without
        self._without[home] = (self.clock() + RETRY_AFTER, code, channel.guild.id)
        self._without.move_to_end(home)
        if len(self._without) > CACHE_SIZE:
            self._without.popitem(last=False)
        if not first:
            return
        log.info("no character webhook in channel %s (Discord error %s)", home, code)
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                await channel.send(NOTICES[code], allowed_mentions=NO_PINGS)
        # RateLimited: a long slowmode holds it, not waited out
        except (discord.HTTPException, discord.RateLimited, TimeoutError) as error:
            log.warning("could not tell channel %s why characters speak as me: %r", home, error)

    def _cached(self, home: int) -> discord.Webhook | None:
        webhook = self._webhooks.get(home)
        if webhook is not None:
            self._webhooks.move_to_end(home)
        return webhook

    def _forget(self, channel: Channel, webhook_id: int | None) -> None:
        """Drop the cached webhook of `channel` if it is still the one that failed."""
        home = _home(channel)
        cached = self._webhooks.get(home)
        if cached is not None and cached.id == webhook_id:
            del self._webhooks[home]


def _parent(channel: Channel) -> discord.TextChannel | discord.VoiceChannel | discord.ForumChannel:
    """The channel whose webhooks speak in `channel`: itself, or a thread's parent."""
    parent = channel.parent if isinstance(channel, discord.Thread) else channel
    if parent is None:
        raise BotError("I can't find the channel of this thread.")
    return parent


def may_make_webhooks(channel: Channel) -> bool:
    parent = _parent(channel)
    return parent.permissions_for(parent.guild.me).manage_webhooks


def _home(channel: Any) -> int:
    """The id of the channel whose webhook speaks in `channel`: a thread's parent."""
    return channel.parent_id if isinstance(channel, discord.Thread) else channel.id
