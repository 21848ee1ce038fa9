"""stream_reply: immediate first message, throttled edits, splitting, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cogs.ai.streaming import WRITING_MARKER, ReplyCutOff, stream_reply
from utils.errors import BotError


class FakeMessage:
    def __init__(self, content: str) -> None:
        self.versions = [content]

    async def edit(self, *, content: str) -> None:
        self.versions.append(content)


class Sink:
    def __init__(self) -> None:
        self.messages: list[FakeMessage] = []

    async def send(self, content: str) -> FakeMessage:
        self.messages.append(FakeMessage(content))
        return self.messages[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def pieces(
    texts: list[str], clock: Clock, step: float, fail: bool = False
) -> AsyncIterator[str]:
    for text in texts:
        yield text
        clock.now += step
    if fail:
        raise BotError("cut")


async def test_first_piece_at_once_then_throttled_edits() -> None:
    clock, sink = Clock(), Sink()
    texts = [f"word{i} " for i in range(20)]
    await stream_reply(pieces(texts, clock, 0.25), sink, interval=1.0, clock=clock)
    (message,) = sink.messages
    assert message.versions[0] == "word0" + WRITING_MARKER
    assert message.versions[-1] == "".join(texts).strip()
    # 20 pieces over 5 s: about one edit per second, plus the final one.
    assert 4 <= len(message.versions) - 1 <= 7


async def test_long_reply_continues_in_new_messages() -> None:
    clock, sink = Clock(), Sink()
    text = "A sentence of some length that keeps going. " * 120
    chunks = [text[i : i + 300] for i in range(0, len(text), 300)]
    await stream_reply(pieces(chunks, clock, 1.0), sink, interval=1.0, clock=clock)
    finals = [m.versions[-1] for m in sink.messages]
    assert len(finals) == 3
    assert all(len(f) <= 2000 and not f.endswith(WRITING_MARKER) for f in finals)
    assert " ".join(finals).split() == text.split()


async def test_failure_after_text_marks_the_reply() -> None:
    clock, sink = Clock(), Sink()
    with pytest.raises(ReplyCutOff):
        await stream_reply(pieces(["partial answer"], clock, 1.0, fail=True), sink, clock=clock)
    assert sink.messages[0].versions[-1] == "partial answer\n\n*⚠️ cut*"


async def test_failure_before_text_sends_nothing() -> None:
    clock, sink = Clock(), Sink()
    with pytest.raises(BotError) as info:
        await stream_reply(pieces([], clock, 1.0, fail=True), sink, clock=clock)
    assert not isinstance(info.value, ReplyCutOff)
    assert sink.messages == []


async def test_empty_reply_is_an_error() -> None:
    with pytest.raises(BotError, match="empty reply"):
        await stream_reply(pieces(["  ", ""], Clock(), 1.0), Sink())
