"""stream_reply: immediate first message, throttled edits, splitting, failures, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from cogs.ai.streaming import FINALISE_TIMEOUT, WRITING_MARKER, ReplyCutOff, stream_reply
from utils.errors import BotError
from utils.gemini import ReplyStopped


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


class Recorder:
    """What the history would hold: every (text, incomplete) the stream reported."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    async def __call__(self, text: str, incomplete: str | None) -> None:
        self.calls.append((text, incomplete))


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
    await stream_reply(pieces(texts, clock, 0.25), sink, Recorder(), interval=1.0, clock=clock)
    (message,) = sink.messages
    assert message.versions[0] == "word0" + WRITING_MARKER
    assert message.versions[-1] == "".join(texts).strip()
    # 20 pieces over 5 s: about one edit per second, plus the final one.
    assert 4 <= len(message.versions) - 1 <= 7


async def test_long_reply_continues_in_new_messages() -> None:
    clock, sink = Clock(), Sink()
    text = "A sentence of some length that keeps going. " * 120
    chunks = [text[i : i + 300] for i in range(0, len(text), 300)]
    await stream_reply(pieces(chunks, clock, 1.0), sink, Recorder(), interval=1.0, clock=clock)
    finals = [m.versions[-1] for m in sink.messages]
    assert len(finals) == 3
    assert all(len(f) <= 2000 and not f.endswith(WRITING_MARKER) for f in finals)
    assert " ".join(finals).split() == text.split()


async def test_failure_after_text_marks_the_reply() -> None:
    clock, sink, record = Clock(), Sink(), Recorder()
    with pytest.raises(ReplyCutOff):
        await stream_reply(
            pieces(["partial answer"], clock, 1.0, fail=True), sink, record, clock=clock
        )
    assert sink.messages[0].versions[-1] == "partial answer\n\n*⚠️ cut*"
    assert record.calls[-1] == ("partial answer", "error")


async def test_failure_before_text_sends_nothing() -> None:
    clock, sink, record = Clock(), Sink(), Recorder()
    with pytest.raises(BotError) as info:
        await stream_reply(pieces([], clock, 1.0, fail=True), sink, record, clock=clock)
    assert not isinstance(info.value, ReplyCutOff)
    assert sink.messages == [] and record.calls == []


async def test_empty_reply_is_an_error() -> None:
    with pytest.raises(BotError, match="empty reply"):
        await stream_reply(pieces(["  ", ""], Clock(), 1.0), Sink(), Recorder())


async def test_the_record_follows_what_is_shown() -> None:
    clock, sink, record = Clock(), Sink(), Recorder()
    texts = ["one ", "two ", "three"]
    await stream_reply(pieces(texts, clock, 1.0), sink, record, interval=1.0, clock=clock)
    assert record.calls == [
        ("one ", "interrupted"),
        ("one two ", "interrupted"),
        ("one two three", "interrupted"),
        ("one two three", None),
    ]


async def test_a_stopped_reply_keeps_its_text_and_says_why() -> None:
    async def stopped() -> AsyncIterator[str]:
        yield "A long answer that"
        raise ReplyStopped("length", "cut at the length limit", prompt=False, partial=True)

    sink, record = Sink(), Recorder()
    with pytest.raises(ReplyCutOff):
        await stream_reply(stopped(), sink, record)
    assert sink.messages[0].versions[-1] == (
        "A long answer that\n\n*⚠️ reply cut at the length limit*"
    )
    assert record.calls[-1] == ("A long answer that", "length")


async def endless(first: str, started: asyncio.Event) -> AsyncIterator[str]:
    yield first
    started.set()
    await asyncio.Event().wait()  # a model still writing
    yield "never"


async def test_a_cancelled_reply_is_finalised_and_recorded_as_cut_off() -> None:
    sink, record, started = Sink(), Recorder(), asyncio.Event()
    task = asyncio.create_task(stream_reply(endless("Half of the", started), sink, record))
    await started.wait()
    assert sink.messages[0].versions[-1] == "Half of the" + WRITING_MARKER
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.messages[0].versions[-1] == "Half of the\n\n*⚠️ reply cut off by a restart*"
    assert record.calls[-1] == ("Half of the", "restart")


async def test_a_cancelled_reply_is_not_held_up_by_a_dead_discord() -> None:
    class DeadMessage(FakeMessage):
        async def edit(self, *, content: str) -> None:
            await asyncio.Event().wait()  # Discord never answers

    class DeadSink(Sink):
        async def send(self, content: str) -> FakeMessage:
            self.messages.append(DeadMessage(content))
            return self.messages[-1]

    sink, record, started = DeadSink(), Recorder(), asyncio.Event()
    task = asyncio.create_task(stream_reply(endless("Half", started), sink, record))
    await started.wait()
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < FINALISE_TIMEOUT + 0.5
    assert record.calls[-1] == ("Half", "restart"), "stored even though Discord is gone"


async def test_cancelled_before_any_text_shows_and_records_nothing() -> None:
    async def silent() -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield "never"

    sink, record = Sink(), Recorder()
    task = asyncio.create_task(stream_reply(silent(), sink, record))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.messages == [] and record.calls == []
