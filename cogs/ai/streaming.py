"""Showing a streamed reply in Discord: first message at once, throttled edits, splits.

`stream_reply` is Discord-agnostic: it talks to a `Sink` that sends new
messages and to the objects the sink returns, which it edits. The cog provides
sinks for channel messages and for slash-command interactions. After each time
it shows text it tells a `Recorder`, so the history holds what people saw.
A reply a crash left still being written is finalised at the next start
(`after_crash` gives its last message's new text).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from cogs.ai.records import WRITING
from utils.errors import BotError
from utils.gemini_replies import ReplyStopped
from utils.text import DISCORD_LIMIT, StreamPlan, StreamSplitter, close_code_block, split_message

log = logging.getLogger(__name__)

WRITING_MARKER = " ⌛"
CUT_OFF_NOTE = "\n\n*⚠️ {error}*"
RESTART_NOTE = CUT_OFF_NOTE.format(error="reply cut off by a restart")
FAILED = "the reply could not be finished"  # shown when Discord or storage failed mid-reply
FINALISE_TIMEOUT = 3.0  # seconds a cancelled reply gets to be stored and finalised
RESTART = "restart"  # stored for a reply cut off by a shutdown, or by a crash (at the next start)
SLOWMODE = "slowmode"  # stored for a reply cut to the one message slowmode let the bot send
SLOWMODE_NOTE = CUT_OFF_NOTE.format(error="the rest is cut off: slowmode holds my next message")


class ReplyCutOff(BotError):
    """The stream failed after part of the reply was shown (the messages say so)."""


class Editable(Protocol):
    @property
    def id(self) -> int: ...

    async def edit(self, *, content: str) -> Any: ...


class Sink(Protocol):
    async def send(self, content: str) -> Editable: ...


class Splitter(Protocol):
    """Turns the text so far into messages (`utils.text.StreamSplitter` is one); a plan
    with an empty tail means nothing can be shown yet."""

    def feed(self, text: str) -> StreamPlan: ...

    def finish(self, text: str) -> list[str]: ...


# Called with the text shown so far, why it is incomplete (None: the whole reply) and the
# ids of the reply's messages so far, in order (the latest shows the writing marker).
Recorder = Callable[[str, str | None, list[int]], Awaitable[None]]


class _Messages:
    """The messages of one reply and what each currently shows."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.sent: list[Editable] = []
        self.shown: list[str] = []
        self.edits = 0
        self.sending: tuple[str, asyncio.Task[Editable]] | None = None

    async def show(self, contents: list[str]) -> None:
        for index, content in enumerate(contents):
            if index == len(self.sent):
                await self._send(content)
            elif self.shown[index] != content:
                await self.sent[index].edit(content=content)
                self.shown[index] = content
                self.edits += 1

    async def _send(self, content: str) -> None:
        # Shielded: Discord may make the message though a shutdown stops the wait for it.
        # It stays `sending` then, and `settle` counts it once sent, so that it is
        # finalised, not left showing the writing marker for good (nor sent again).
        task = asyncio.create_task(self.sink.send(content))
        self.sending = (content, task)
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and (task.cancelled() or task.exception() is not None):
                self.sending = None  # not sent (only a stop while it is under way keeps it)
        await self.settle()

    async def settle(self) -> None:
        """Count the message being sent when the reply was cancelled, once it is sent."""
        if self.sending is not None:
            content, task = self.sending
            message = await task
            self.sending = None
            self.sent.append(message)
            self.shown.append(content)

    @property
    def ids(self) -> list[int]:
        return [message.id for message in self.sent]


async def stream_reply(
    pieces: AsyncIterator[str],
    sink: Sink,
    record: Recorder,
    *,
    interval: float = 1.0,
    limit: int = DISCORD_LIMIT,
    splitter: Splitter | None = None,
    clock: Callable[[], float] = time.monotonic,
    one_message: bool = False,
) -> list[Editable]:
    """Show `pieces` as they arrive; return the messages sent.

    The first piece is shown at once; later ones at most every `interval` seconds.
    Past `limit` the reply continues in a new message. A marker shows the reply is
    still being written; the final messages hold exactly the model's text. If the
    stream fails or is cancelled after something was shown, the messages end with a
    short note. `record` follows what is shown (marked incomplete until the end).
    A `splitter` replaces the plain one of `limit` (a scene splits at speakers).
    With `one_message` (slowmode holds the bot's next message) a reply past one message
    stops there, its message saying the rest is cut off, and is stored so.
    """
    splitter = splitter or StreamSplitter(limit, WRITING_MARKER)
    messages = _Messages(sink)
    text = seen = ""  # seen: the text of the last show that went through
    last_render = -math.inf
    shown_whole = False
    stopped: str | None = None  # why the reply stopped short of the model's end

    def fitting(text: str, note: str) -> str:
        """What of `text` is shown with `note` (with `one_message`, what fits in one)."""
        if one_message and len(splitter.finish(_noted(text, note))) > 1:
            return split_message(text, limit - len(note))[0]
        return text

    try:
        async for piece in pieces:
            text += piece
            if one_message and len(splitter.finish(text)) > 1:
                stopped = SLOWMODE  # the model is not asked for more than can be shown
                break
            if text.strip() and clock() - last_render >= interval:
                plan = splitter.feed(text)
                if not plan.tail:
                    continue
                await messages.show([*plan.frozen, plan.tail])
                seen = text
                last_render = clock()
                await record(text, WRITING, messages.ids)
        final = splitter.finish(text)
        if stopped is not None:
            text = fitting(text, SLOWMODE_NOTE)
            final = splitter.finish(_noted(text, SLOWMODE_NOTE))
        if not final:
            raise BotError("The AI sent an empty reply; please try again.")
        await messages.show(final)
        shown_whole = True
        try:
            await record(text, stopped, messages.ids)
        except Exception as error:  # shown whole all the same: no error to show for it
            log.warning("could not store a reply shown whole; trying again: %r", error)
            await _finalise(messages, None, lambda: record(text, stopped, messages.ids))
    except BotError as error:
        if not messages.sent:
            raise
        try:
            note = CUT_OFF_NOTE.format(error=error)
            shown = fitting(text, note)
            await messages.show(splitter.finish(_noted(shown, note)))
            seen = shown
        except Exception as failure:  # Discord failed too: stored as seen, not "being written"
            log.warning("could not say why a reply was cut off: %r", failure)
        reason = error.reason if isinstance(error, ReplyStopped) else "error"
        await record(seen, reason, messages.ids)
        raise ReplyCutOff(str(error)) from error
    except Exception as error:  # Discord or the history failed mid-reply (a message deleted...)
        if not messages.sent:
            raise
        log.warning("a reply was cut off: %r", error)
        # Best effort: a deleted message can't be edited, but the history must still
        # hold the reply as cut off, as far as it was seen, not as being written.
        note = CUT_OFF_NOTE.format(error=FAILED)
        if await _finalise(messages, splitter.finish(_noted(shown := fitting(text, note), note))):
            seen = shown
        await _finalise(messages, None, lambda: record(seen, "error", messages.ids))
        raise ReplyCutOff(FAILED) from error
    except asyncio.CancelledError:
        if shown_whole:
            await _finalise(messages, None, lambda: record(text, stopped, messages.ids))
        elif messages.sent or messages.sending:
            shown = fitting(text, RESTART_NOTE)
            await _finalise(
                messages,
                splitter.finish(_noted(shown, RESTART_NOTE)),
                lambda: record(shown, RESTART, messages.ids),
            )
        raise
    if stopped is not None:
        raise ReplyCutOff(SLOWMODE_NOTE)  # shown and stored as cut off
    return messages.sent


async def _finalise(
    messages: _Messages,
    contents: list[str] | None,
    store: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Show `contents` of a reply cut off, then `store` it, within FINALISE_TIMEOUT in
    all: a dead Discord or disk must not hold up a shutdown. If either fails (False), the
    stored reply stays marked as being written, and the next start finalises it.
    """
    try:
        async with asyncio.timeout(FINALISE_TIMEOUT):
            await messages.settle()
            if contents is not None:
                await messages.show(contents)
            if store is not None:
                await store()
    except Exception as error:
        log.warning("could not finalise a reply cut off: %r", error)
        return False
    return True


def after_crash(shown: str, limit: int = DISCORD_LIMIT) -> list[str] | None:
    """What the last message of a reply cut off by a crash should show instead of `shown`:
    the same text without the writing marker and with the restart note (a second message
    takes what no longer fits). None if it does not show the marker (already final)."""
    if not shown.endswith(WRITING_MARKER):
        return None
    return StreamSplitter(limit, WRITING_MARKER).finish(
        _noted(shown.removesuffix(WRITING_MARKER), RESTART_NOTE)
    )


def _noted(text: str, note: str) -> str:
    """A reply cut off, as it ends: its text, a code block it left open closed, `note`."""
    return close_code_block(text.rstrip()) + note
