"""Showing a streamed reply in Discord: first message at once, throttled edits, splits.

`stream_reply` is Discord-agnostic: it talks to a `Sink` that sends new
messages and to the objects the sink returns, which it edits. The cog provides
sinks for channel messages and for slash-command interactions.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from utils.errors import BotError
from utils.text import DISCORD_LIMIT, StreamSplitter

WRITING_MARKER = " ⌛"
CUT_OFF_NOTE = "\n\n*⚠️ {error}*"


class ReplyCutOff(BotError):
    """The stream failed after part of the reply was shown (the messages say so)."""


class Editable(Protocol):
    async def edit(self, *, content: str) -> Any: ...


class Sink(Protocol):
    async def send(self, content: str) -> Editable: ...


class _Messages:
    """The messages of one reply and what each currently shows."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.sent: list[Editable] = []
        self.shown: list[str] = []
        self.edits = 0

    async def show(self, contents: list[str]) -> None:
        for index, content in enumerate(contents):
            if index == len(self.sent):
                self.sent.append(await self.sink.send(content))
                self.shown.append(content)
            elif self.shown[index] != content:
                await self.sent[index].edit(content=content)
                self.shown[index] = content
                self.edits += 1


async def stream_reply(
    pieces: AsyncIterator[str],
    sink: Sink,
    *,
    interval: float = 1.0,
    limit: int = DISCORD_LIMIT,
    clock: Callable[[], float] = time.monotonic,
) -> list[Editable]:
    """Show `pieces` as they arrive; return the messages sent.

    The first piece is shown at once; later ones at most every `interval` seconds.
    Past `limit` the reply continues in a new message. A marker shows the reply is
    still being written; the final messages hold exactly the model's text. If the
    stream fails after something was shown, the messages end with a short note.
    """
    splitter = StreamSplitter(limit, WRITING_MARKER)
    messages = _Messages(sink)
    text = ""
    last_render = -math.inf
    try:
        async for piece in pieces:
            text += piece
            if text.strip() and clock() - last_render >= interval:
                plan = splitter.feed(text)
                await messages.show([*plan.frozen, plan.tail])
                last_render = clock()
    except BotError as error:
        if not messages.sent:
            raise
        await messages.show(splitter.finish(text + CUT_OFF_NOTE.format(error=error)))
        raise ReplyCutOff(str(error)) from error
    final = splitter.finish(text)
    if not final:
        raise BotError("The AI sent an empty reply; please try again.")
    await messages.show(final)
    return messages.sent
