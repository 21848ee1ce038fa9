"""How an AI reply meets Discord: where a request came from and who asked (what they
sent: `cogs.ai.asked`), whether and where a reply (or why there is none) can be shown,
the sink a reply streams into, the typing indicator and the reply's metrics (finalising
replies a crash left being written: `cogs.ai.unfinished`).

Mentions and `/chat` (prefix or slash) take the same path: a `commands.Context`, built by
discord.py for a command and by `bot.get_context` for a message that is not one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.ext import commands

from cogs.ai.records import Place
from cogs.ai.streaming import ReplyCutOff
from utils.errors import BotError
from utils.gemini_replies import AIUnavailableError, ReplyStopped
from utils.memory.chatlog import BOT_LABEL
from utils.metrics import Metrics, ReplyTimer
from utils.text import wait_words

if TYPE_CHECKING:
    from bot import Bot  # noqa: F401 (named in the Context alias)

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

# AI output may mention anyone by accident or on request: it pings no one.
NO_PINGS = discord.AllowedMentions.none()
ATTACHMENT_TIMEOUT = 30.0  # seconds to download one attachment
DROPPED = "I'm restarting and couldn't get to this. Please ask again in a moment."
SORRY = "Sorry, something went wrong on my side; please try again."
TOKEN_EXPIRED = 50027  # Discord's "Invalid Webhook Token": an interaction's, after 15 minutes
TYPING_EVERY = 8.0  # seconds between typing indicators: Discord shows each for about 10


@dataclass
class Sent:
    """A message of a reply; edits keep pinging no one."""

    message: discord.Message | discord.WebhookMessage

    @property
    def id(self) -> int:
        return self.message.id

    async def edit(self, *, content: str) -> None:
        await self.message.edit(content=content, allowed_mentions=NO_PINGS)


@dataclass
class _Followup(Sent):
    """A message of a reply sent through an interaction. Its token lives 15 minutes (a
    reply can outlast it): then the message is edited as any message of the bot's."""

    channel: discord.PartialMessageable

    async def edit(self, *, content: str) -> None:
        try:
            await super().edit(content=content)
        except discord.HTTPException as error:
            if error.code != TOKEN_EXPIRED:
                raise
            partial = self.channel.get_partial_message(self.id)
            self.message = await partial.edit(content=content, allowed_mentions=NO_PINGS)


class Held(BotError):
    """Discord holds the bot's messages where a reply goes for longer than the bot waits
    out a rate limit (30 s, `bot.Bot`): nothing is sent there meanwhile, not even why."""

    @classmethod
    def by(cls, error: discord.RateLimited) -> Held:
        return cls(f"Discord holds my messages here for {wait_words(error.retry_after)}.")


class ContextSink:
    """Sends a reply where it was asked for. A message gets replies to it; a slash command,
    deferred, gets its "thinking" response filled in by the first message, then follow-ups
    (discord.py's `Context.send`). Once its token has expired, the first message is the
    "thinking" message edited in the channel (`thinking`: its id, as the deferral named
    it), lest it stay for good beside the answer; the rest are plain channel messages."""

    def __init__(self, ctx: Context, thinking: int | None = None) -> None:
        self.ctx = ctx
        self.thinking = thinking
        self._expired = False

    async def send(self, content: str) -> Sent:
        try:
            return await self._send(content)
        except discord.RateLimited as error:  # a long slowmode, most often: not waited out
            raise Held.by(error) from error

    async def _send(self, content: str) -> Sent:
        ctx = self.ctx
        if ctx.interaction is None:
            # A reply to the user's message, which may be gone by now. Discord refuses a
            # reply where the bot can't read the history: there it is a plain message.
            if not permissions_now(ctx).read_message_history:
                return Sent(await ctx.send(content, allowed_mentions=NO_PINGS))
            reference = ctx.message.to_reference(fail_if_not_exists=False)
            return Sent(
                await ctx.send(
                    content, reference=reference, mention_author=False, allowed_mentions=NO_PINGS
                )
            )
        channel = ctx.bot.get_partial_messageable(ctx.channel.id)
        # discord.py's own clock sends past the 15 minutes as a channel message: not asked.
        if not self._expired and not ctx.interaction.is_expired():
            try:
                sent = _Followup(await ctx.send(content, allowed_mentions=NO_PINGS), channel)
            except discord.HTTPException as error:
                if error.code != TOKEN_EXPIRED:
                    raise
            else:
                self.thinking = None  # filled in by this message
                return sent
        self._expired = True
        if (thinking := self.thinking) is not None:
            self.thinking = None
            try:
                message = channel.get_partial_message(thinking)
                return Sent(await message.edit(content=content, allowed_mentions=NO_PINGS))
            except discord.NotFound:
                log.info("the thinking message of a slash command was deleted; sending anew")
        # Not a reply: the asker is not pinged for it (mentioning them would put their name
        # in what the history holds).
        return Sent(await channel.send(content, allowed_mentions=NO_PINGS))


async def say_dropped(sink: ContextSink) -> None:
    """Tell the asker their request was dropped unanswered by a restart: best effort, its
    time bounded by the shutdown (`ChannelDispatcher.close`)."""
    try:
        await sink.send(DROPPED)
    except (discord.HTTPException, Held, aiohttp.ClientError, OSError) as error:
        log.info("could not say a request was dropped: %r", error)


async def say_why(sink: ContextSink, text: str) -> None:
    """Tell the asker why there is no reply: best effort, as Discord may refuse it too."""
    try:
        await sink.send(text)
    except (discord.HTTPException, Held, aiohttp.ClientError, OSError) as error:
        log.warning("could not say why there is no reply: %r", error)


def permissions_now(ctx: Context) -> discord.Permissions:
    """The bot's permissions now where a message asks it for a reply (`ctx.bot_permissions`
    is worked out once, and a message may wait a while for its turn)."""
    if not isinstance(ctx.me, discord.Member):
        return ctx.bot_permissions  # a DM's, which do not change
    return ctx.channel.permissions_for(ctx.me)


def may_write(ctx: Context) -> bool:
    """Whether the bot may write now where a message asks it for a reply (not where the
    channel was deleted, the thread archived or the bot removed from the server while
    the message waited). A slash command's reply needs no permission: only a channel
    deleted meanwhile, in a server the bot is in, stops it."""
    channel = ctx.channel
    if ctx.interaction is not None:
        guild_id = ctx.interaction.guild_id
        guild = ctx.bot.get_guild(guild_id) if guild_id is not None else None
        # A private thread the bot is not in is in no cache: its channel's presence tells.
        known = channel.parent_id if isinstance(channel, discord.Thread) else channel.id
        return guild is None or guild.get_channel(known) is not None
    if ctx.guild is not None:
        guild = ctx.bot.get_guild(ctx.guild.id)  # the cache as it is now
        if guild is None or guild.get_channel_or_thread(channel.id) is None:
            return False
    permissions = permissions_now(ctx)
    if isinstance(channel, discord.Thread):
        # A locked thread takes messages only from those who manage threads.
        locked_out = channel.locked and not permissions.manage_threads
        return permissions.send_messages_in_threads and not locked_out
    return permissions.send_messages


def spoken(message: discord.Message, bot_id: int) -> str:
    """What a message says to the AI: its text without mentions of the bot or of its own
    role (Discord offers both for @ and its name)."""
    role = message.guild.self_role if message.guild else None
    mine = rf"<@!?{bot_id}>" + (rf"|<@&{role.id}>" if role else "")
    return re.sub(mine, "", message.content).strip()


def speaker(user: discord.abc.User) -> str:
    """How the model and the history name a person: their display name, marked when it
    would read as the bot's own label (`BOT_LABEL`), lest someone nicknamed "Assistant"
    speak as the bot in what the model reads."""
    name = user.display_name
    folded = name.casefold()
    if folded == BOT_LABEL or folded.startswith(f"{BOT_LABEL}:"):
        return f"@{name}"
    return name


def place_of(ctx: Context) -> Place:
    """Where a message or slash command asks for a reply."""
    channel = ctx.channel
    if isinstance(channel, discord.DMChannel):
        description = f"a direct message with {ctx.author.display_name}"
    else:
        name = getattr(channel, "name", "a channel")
        guild = getattr(channel, "guild", None)
        description = f'the #{name} channel of the Discord server "{guild.name if guild else "?"}"'
    # A slash command of a user-installed app may come from a guild the bot is not in.
    guild_id = ctx.interaction.guild_id if ctx.interaction else ctx.guild and ctx.guild.id
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Place(guild_id, channel.id, description, parent_id)


async def show_typing(channel: discord.abc.Messageable, timer: ReplyTimer) -> None:
    """Show the typing indicator until the reply's first words are shown: Discord shows
    one for about 10 seconds, and a model may think (or retry) longer before it writes.
    A failure only costs the indicator."""
    while timer.first_text is None:
        try:
            await channel.typing()
        except discord.HTTPException as error:
            log.debug("typing indicator failed: %s", error)
            return
        await asyncio.sleep(TYPING_EVERY)


@contextmanager
def measured(metrics: Metrics) -> Iterator[ReplyTimer]:
    """Time one reply and count how it ended (whatever ended it is re-raised)."""
    timer = metrics.reply()
    outcome = "error"
    try:
        yield timer
        outcome = "ok"
    except ReplyCutOff:
        outcome = "cut_off"
        raise
    except AIUnavailableError:
        outcome = "unavailable"
        raise
    except ReplyStopped:
        outcome = "blocked"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        elapsed = timer.finish(outcome)
        log.info("AI reply %s after %.2f s", outcome, elapsed, extra={"outcome": outcome})
