"""How an AI reply meets Discord: where a request came from, what the person sent, whether
and where a reply (or why there is none) can be shown, the sink a reply streams into, the
typing indicator and the reply's metrics (finalising replies a crash left being written:
`cogs.ai.unfinished`).

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
from functools import partial
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.ext import commands

from cogs.ai.prompting import (
    INLINE_LIMIT,
    Attachment,
    UserInput,
    attachment_part,
    check_attachment,
    embed_note,
    forward_note,
    note_of,
    poll_note,
    reply_note,
    sticker_note,
    thread_note,
)
from cogs.ai.records import Place
from cogs.ai.streaming import ReplyCutOff
from utils.errors import BotError
from utils.gemini_replies import AIUnavailableError, ReplyStopped
from utils.memory.chatlog import BOT_LABEL
from utils.metrics import Metrics, ReplyTimer
from utils.text import truncate, wait_words

if TYPE_CHECKING:
    from bot import Bot  # noqa: F401 (named in the Context alias)

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

# AI output may mention anyone by accident or on request: it pings no one.
NO_PINGS = discord.AllowedMentions.none()
ATTACHMENT_TIMEOUT = 30.0  # seconds to download one attachment
STARTER_TIMEOUT = 5.0  # seconds to fetch the message a thread was started from
EMBED_CHARS = 500  # of an embed noted: enough for a preview or a card, not a page
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


def held_by_slowmode(ctx: Context) -> bool:
    """Whether slowmode holds the bot's messages where a message asks it for a reply."""
    if ctx.interaction is not None or not getattr(ctx.channel, "slowmode_delay", 0):
        return False  # an interaction's messages are the webhook's, which slowmode spares
    can = permissions_now(ctx)
    thread = isinstance(ctx.channel, discord.Thread)
    spared = can.manage_messages or can.manage_channels or (thread and can.manage_threads)
    return not (spared or can.bypass_slowmode)


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


def notes_of(message: discord.Message, bot_id: int) -> list[str]:
    """What the model and the history read of a message besides its text: a note of each
    attachment and sticker (the content of those the model can read goes beside it), of
    a poll, of each message it forwards and of the message it replies to (whose text is
    in nothing else it reads), unless that is the bot's own (`bot_replied`)."""
    notes = _file_notes(message.attachments, message.stickers)
    if message.poll is not None:
        notes.append(poll_note(message.poll.question, [a.text for a in message.poll.answers]))
    for snapshot in message.message_snapshots:
        notes.append(forward_note(_content_of(snapshot)))
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    # A forward has a reference too, but never a resolved message; one deleted has none.
    if isinstance(replied, discord.Message) and replied.author.id != bot_id:
        notes.append(reply_note(speaker(replied.author), _content_of(replied)))
    return notes


def stored_text(message: discord.Message, text: str, bot_id: int) -> str:
    """What the history holds of `message` saying `text`: with the notes of its
    attachments, stickers, forward and the message it replies to."""
    return UserInput(speaker(message.author), text, notes=notes_of(message, bot_id)).stored_text


def bot_replied(message: discord.Message, bot_id: int) -> tuple[int, str] | None:
    """The bot's own message that `message` replies to, its id and note: the model reads
    it unless the history of the reply holds it (not so of a music card, a command's
    answer, a reply summarised or pruned since)."""
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    if isinstance(replied, discord.Message) and replied.author.id == bot_id:
        return replied.id, reply_note(BOT_LABEL, _content_of(replied))  # as the model knows it
    return None


def _content_of(message: discord.Message | discord.MessageSnapshot) -> str:
    """What a forwarded or replied-to message says: its text, its embeds' (a link's
    preview, another bot's card, often all there is), notes of its files and stickers,
    and what a replied-to forward forwards (its own text is empty)."""
    embeds = [
        embed_note(truncate(" / ".join(filter(None, (e.title, e.description))), EMBED_CHARS))
        for e in message.embeds
        if e.title or e.description
    ]
    files = _file_notes(message.attachments, message.stickers)
    forwards: list[str] = []
    if isinstance(message, discord.Message):  # a snapshot forwards nothing itself
        forwards = [forward_note(_content_of(s)) for s in message.message_snapshots]
    return " ".join([message.content, *embeds, *files, *forwards]).strip()


def _file_notes(
    attachments: list[discord.Attachment], stickers: list[discord.StickerItem]
) -> list[str]:
    notes = [
        note_of(Attachment(item.filename, item.content_type or "", item.size))
        for item in attachments
    ]
    return notes + [sticker_note(sticker.name) for sticker in stickers]


async def user_input(ctx: Context, text: str, max_attachment_bytes: int) -> UserInput:
    """What the person sent: their text, notes of what they attached, and the attachments
    the model can read."""
    user = UserInput(author_name=speaker(ctx.author), text=text)
    channel = ctx.channel
    # A roleplay scene reads nothing said before it started.
    if isinstance(channel, discord.Thread) and ctx.bot.directors.of(channel.id) is None:
        answered = None if ctx.interaction else ctx.message.id
        user.opening = partial(_starter_note, channel, answered, ctx.me.id)
    if ctx.interaction is not None:
        return user
    user.notes = notes_of(ctx.message, ctx.me.id)
    user.replied = bot_replied(ctx.message, ctx.me.id)
    attached = [
        (item, Attachment(item.filename, item.content_type or "", item.size))
        for item in ctx.message.attachments
    ]
    readable = [(item, a) for item, a in attached if check_attachment(a, max_attachment_bytes)]
    if sum(attachment.size for _, attachment in readable) > INLINE_LIMIT:
        limit = INLINE_LIMIT // 1_000_000
        raise BotError(f"The files of one message can be at most {limit} MB together for me.")
    for item, attachment in readable:
        try:
            attachment.data = await asyncio.wait_for(item.read(), ATTACHMENT_TIMEOUT)
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as error:
            raise BotError(f"I couldn't download `{item.filename}`.") from error
        user.parts.append(await attachment_part(attachment))
    return user


async def _starter_note(thread: discord.Thread, answered: int | None, bot_id: int) -> str | None:
    """The note of the message `thread` was started from (it has the thread's id: in the
    parent channel, or a forum post's own first message), unless that is the message
    answered; None when there is none, or it can't be read now."""
    if thread.id == answered:
        return None
    starter = thread.starter_message  # discord.py's cache of messages, when it holds it
    if starter is None:
        parent = thread.parent
        where = parent if isinstance(parent, discord.TextChannel) else thread
        try:
            starter = await asyncio.wait_for(where.fetch_message(thread.id), STARTER_TIMEOUT)
        except (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, OSError) as error:
            log.debug("no starter message for thread %s: %r", thread.id, error)  # most have none
            return None
    said = _content_of(starter)
    name = BOT_LABEL if starter.author.id == bot_id else speaker(starter.author)
    return thread_note(name, said) if said else None


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
