"""What a person's message gives the AI: its text's notes (attachments, stickers, a poll,
forwards, the message it replies to, the message its thread was started from), the
attachments the model can read, and what the history holds of it, sent or edited.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import aiohttp
import discord

from cogs.ai.prompting import (
    INLINE_LIMIT,
    THREAD_NOTE,
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
from cogs.ai.replies import ATTACHMENT_TIMEOUT, Context, speaker
from utils.errors import BotError
from utils.memory.chatlog import BOT_LABEL
from utils.text import truncate

log = logging.getLogger(__name__)

STARTER_TIMEOUT = 5.0  # seconds to fetch the message a thread was started from
EMBED_CHARS = 500  # of an embed noted: enough for a preview or a card, not a page


def notes_of(message: discord.Message, bot_id: int) -> list[str]:
    """What the model and the history read of a message besides its text: a note of each
    attachment and sticker (the content of those the model can read goes beside it), of
    a poll, of each message it forwards and of the message it replies to (whose text is
    in nothing else it reads), unless that is the bot's own (`bot_replied`)."""
    notes = _file_notes(message.attachments, message.stickers) + _own_notes(message)
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    # A forward has a reference too, but never a resolved message; one deleted has none.
    if isinstance(replied, discord.Message) and replied.author.id != bot_id:
        notes.append(reply_note(speaker(replied.author), _content_of(replied)))
    return notes


def stored_text(
    message: discord.Message, text: str, bot_id: int, opening: str | None = None
) -> str:
    """What the history holds of `message` saying `text`: with the notes of the message
    its thread was started from (`opening`, in a thread's first exchange), of its
    attachments, stickers, forward and the message it replies to."""
    notes = [opening] if opening else []
    notes += notes_of(message, bot_id)
    return UserInput(speaker(message.author), text, notes=notes).stored_text


async def edited_text(message: discord.Message, text: str, bot_id: int, held: str) -> str:
    """What the history holds of `message` edited to say `text`, its turn holding `held`:
    in a thread's first exchange, still the note of the message the thread was started
    from (as it reads now), which is no part of the message itself."""
    opening = None
    if isinstance(message.channel, discord.Thread) and THREAD_NOTE in held:
        opening = await starter_note(message.channel, message.id, bot_id)
    return stored_text(message, text, bot_id, opening)


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
    and of a replied-to message's poll and what it forwards (their own text is empty)."""
    embeds = [
        embed_note(truncate(" / ".join(filter(None, (e.title, e.description))), EMBED_CHARS))
        for e in message.embeds
        if e.title or e.description
    ]
    files = _file_notes(message.attachments, message.stickers)
    # A snapshot holds no poll and forwards nothing itself.
    own = _own_notes(message) if isinstance(message, discord.Message) else []
    return " ".join([message.content, *embeds, *files, *own]).strip()


def _own_notes(message: discord.Message) -> list[str]:
    """Notes of a message's poll and of each message it forwards."""
    notes = []
    if message.poll is not None:
        notes.append(poll_note(message.poll.question, [a.text for a in message.poll.answers]))
    return notes + [forward_note(_content_of(s)) for s in message.message_snapshots]


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
        user.opening = partial(starter_note, channel, answered, ctx.me.id)
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


async def starter_note(thread: discord.Thread, answered: int | None, bot_id: int) -> str | None:
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
