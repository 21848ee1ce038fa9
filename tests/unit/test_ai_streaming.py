"""stream_reply: immediate first message, throttled edits, splitting, failures, cancellation;
after_crash: the last message of a reply a crash cut off."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from cogs.ai.streaming import (
    FINALISE_TIMEOUT,
    RESTART_NOTE,
    SLOWMODE,
    SLOWMODE_NOTE,
    WRITING_MARKER,
    ReplyCutOff,
    after_crash,
    stream_reply,
)
from utils.errors import BotError
from utils.gemini_replies import ReplyStopped
from utils.text import DISCORD_LIMIT

_ids = itertools.count(1)


class FakeMessage:
    def __init__(self, content: str) -> None:
        self.id = next(_ids)
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
    """What the history would hold: every (text, incomplete) the stream reported, the
    latest message it named each time, and every message it named the last time."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.message_ids: list[int] = []
        self.all_ids: list[int] = []

    async def __call__(self, text: str, incomplete: str | None, message_ids: list[int]) -> None:
        self.calls.append((text, incomplete))
        self.message_ids.append(message_ids[-1])
        self.all_ids = list(message_ids)


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
    clock, sink, record = Clock(), Sink(), Recorder()
    text = "A sentence of some length that keeps going. " * 120
    chunks = [text[i : i + 300] for i in range(0, len(text), 300)]
    await stream_reply(pieces(chunks, clock, 1.0), sink, record, interval=1.0, clock=clock)
    finals = [m.versions[-1] for m in sink.messages]
    assert len(finals) == 3
    assert all(len(f) <= 2000 and not f.endswith(WRITING_MARKER) for f in finals)
    assert " ".join(finals).split() == text.split()
    # The record names the message that shows the marker: the newest one at each time.
    ids = [m.id for m in sink.messages]
    assert record.message_ids[0] == ids[0] and record.message_ids[-1] == ids[-1]
    assert sorted(set(record.message_ids)) == ids


async def test_the_record_names_every_message_of_a_reply_even_those_sent_at_once() -> None:
    clock, sink, record = Clock(), Sink(), Recorder()
    text = "A sentence of some length that keeps going. " * 120
    # The first piece already fills three messages: none of them is ever "the latest"
    # alone at a record but the last, yet the history must know them all.
    await stream_reply(pieces([text], clock, 1.0), sink, record, interval=1.0, clock=clock)
    assert len(sink.messages) == 3
    assert record.all_ids == [m.id for m in sink.messages]


async def test_failure_after_text_marks_the_reply() -> None:
    clock, sink, record = Clock(), Sink(), Recorder()
    with pytest.raises(ReplyCutOff):
        await stream_reply(
            pieces(["partial answer"], clock, 1.0, fail=True), sink, record, clock=clock
        )
    assert sink.messages[0].versions[-1] == "partial answer\n\n*⚠️ cut*"
    assert record.calls[-1] == ("partial answer", "error")


async def test_a_note_after_an_open_code_block_closes_it_first() -> None:
    code = "Look:\n```py\nx = compute(\n"
    sink, record = Sink(), Recorder()
    with pytest.raises(ReplyCutOff):
        await stream_reply(pieces([code], Clock(), 1.0, fail=True), sink, record)
    assert sink.messages[0].versions[-1] == "Look:\n```py\nx = compute(\n```\n\n*⚠️ cut*"
    assert record.calls[-1] == (code, "error")

    sink, record, started = Sink(), Recorder(), asyncio.Event()
    task = asyncio.create_task(stream_reply(endless(code, started), sink, record))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.messages[0].versions[-1] == "Look:\n```py\nx = compute(\n```" + RESTART_NOTE
    assert record.calls[-1] == (code, "restart")


class FlakyMessage(FakeMessage):
    """A message whose edits fail `failures` times (Discord erred, or it was deleted)."""

    failures = 1

    async def edit(self, *, content: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("Discord went away")
        await super().edit(content=content)


class FlakySink(Sink):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send(self, content: str) -> FakeMessage:
        message = FlakyMessage(content)
        message.failures = self.failures
        self.messages.append(message)
        return message


async def test_a_discord_failure_mid_reply_cuts_it_off_and_says_so() -> None:
    clock, sink, record = Clock(), FlakySink(failures=1), Recorder()
    with pytest.raises(ReplyCutOff, match="could not be finished"):
        await stream_reply(
            pieces(["Shown ", "then more"], clock, 1.0), sink, record, interval=1.0, clock=clock
        )
    assert sink.messages[0].versions[-1] == (
        "Shown then more\n\n*⚠️ the reply could not be finished*"
    )
    assert record.calls[-1] == ("Shown then more", "error")


async def test_a_reply_whose_message_is_gone_is_stored_cut_off_as_it_was_seen() -> None:
    clock, sink, record = Clock(), FlakySink(failures=99), Recorder()
    with pytest.raises(ReplyCutOff):
        await stream_reply(
            pieces(["Shown ", "never seen"], clock, 1.0), sink, record, interval=1.0, clock=clock
        )
    assert sink.messages[0].versions == ["Shown" + WRITING_MARKER]
    assert record.calls[-1] == ("Shown ", "error")


async def test_a_reply_the_ai_cut_off_where_discord_fails_too_is_stored_cut_off_as_seen() -> None:
    """Not left "being written" until the next start: stored as far as it was seen."""
    clock, sink, record = Clock(), FlakySink(failures=99), Recorder()
    with pytest.raises(ReplyCutOff, match="cut"):
        await stream_reply(
            pieces(["Shown ", "never seen"], clock, 0.0, fail=True),
            sink,
            record,
            interval=1.0,
            clock=clock,
        )
    assert sink.messages[0].versions == ["Shown" + WRITING_MARKER]
    assert record.calls[-1] == ("Shown ", "error")


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


async def test_a_message_sent_as_the_reply_is_cancelled_is_finalised_not_left_writing() -> None:
    """Discord may make a message though a shutdown stops the wait for it: that message
    gets the restart note and the reply is recorded, not left showing ⌛ for good."""
    made, answered = asyncio.Event(), asyncio.Event()

    class SlowSink(Sink):
        async def send(self, content: str) -> FakeMessage:
            message = await super().send(content)  # Discord has made it
            made.set()
            await answered.wait()  # its answer is on the way back
            return message

    async def first_words() -> AsyncIterator[str]:
        yield "Half of the"
        await asyncio.Event().wait()  # a model still writing
        yield "never"

    sink, record = SlowSink(), Recorder()
    task = asyncio.create_task(stream_reply(first_words(), sink, record))
    await made.wait()
    task.cancel()
    answered.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    (message,) = sink.messages
    assert message.versions[-1] == "Half of the\n\n*⚠️ reply cut off by a restart*"
    assert record.calls == [("Half of the", "restart")]
    assert record.message_ids == [message.id]


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
    # Still stored as being written, as shown: the next start finalises message and record.
    assert record.calls[-1] == ("Half", "interrupted")
    assert record.message_ids[-1] == sink.messages[0].id


async def test_cancelled_before_any_text_shows_and_records_nothing() -> None:
    waiting = asyncio.Event()

    async def silent() -> AsyncIterator[str]:
        waiting.set()
        await asyncio.Event().wait()
        yield "never"

    sink, record = Sink(), Recorder()
    task = asyncio.create_task(stream_reply(silent(), sink, record))
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.messages == [] and record.calls == []


def test_after_a_crash_the_last_message_loses_the_marker_and_gets_the_note() -> None:
    assert after_crash("Half of the" + WRITING_MARKER) == ["Half of the" + RESTART_NOTE]
    # A code block the stream closed stays closed; the note follows it.
    code = "Look:\n```py\nx = 1\n```" + WRITING_MARKER
    assert after_crash(code) == ["Look:\n```py\nx = 1\n```" + RESTART_NOTE]
    assert after_crash("A whole reply.") is None, "final already: left alone"


def test_after_a_crash_a_full_last_message_continues_in_a_new_one() -> None:
    words = ("word " * 400)[: DISCORD_LIMIT - 10].strip()
    assert after_crash(words + WRITING_MARKER) == [words, RESTART_NOTE.strip()]


async def test_a_reply_shown_whole_whose_storing_fails_once_is_stored_whole_not_failed() -> None:
    """What people saw is what the history holds, and a reply shown whole is no error."""
    clock, sink = Clock(), Sink()
    calls: list[tuple[str, str | None]] = []

    async def record(text: str, incomplete: str | None, message_ids: list[int]) -> None:
        calls.append((text, incomplete))
        if incomplete is None and len(calls) == 2:
            raise OSError("database is locked")

    sent = await stream_reply(
        pieces(["All ", "of it"], clock, 0.0), sink, record, interval=1.0, clock=clock
    )
    assert [m.versions[-1] for m in sent] == ["All of it"]
    assert calls[-1] == ("All of it", None)


async def test_with_one_message_a_long_reply_stops_there_and_is_stored_cut_off() -> None:
    """Slowmode would hold a second message: the reply stops in its first, which says
    the rest is cut off, and what it shows is stored as cut off by slowmode; the model's
    stream is not read past it."""
    clock, sink, record = Clock(), Sink(), Recorder()
    read: list[str] = []

    async def long() -> AsyncIterator[str]:
        for _ in range(10):
            read.append("x")
            yield "word " * 100  # 500 characters each
            clock.now += 2

    with pytest.raises(ReplyCutOff):
        await stream_reply(long(), sink, record, clock=clock, one_message=True)
    assert len(sink.messages) == 1
    final = sink.messages[0].versions[-1]
    assert final.endswith(SLOWMODE_NOTE) and len(final) <= DISCORD_LIMIT
    shown = final.removesuffix(SLOWMODE_NOTE)
    assert record.calls[-1] == (shown, SLOWMODE)
    assert len(read) == 5  # the fifth piece went past one message


async def test_with_one_message_a_note_after_a_full_message_stays_in_it() -> None:
    """A reply the AI stops just short of a full message: its note takes the room of the
    end of the text, not a second message that slowmode would hold."""
    clock, sink, record = Clock(), Sink(), Recorder()
    stopped = ReplyStopped("safety", "blocked by the safety filter", prompt=False, partial=True)

    async def nearly_full() -> AsyncIterator[str]:
        yield "word " * 398  # 1,990 characters
        raise stopped

    with pytest.raises(ReplyCutOff):
        await stream_reply(nearly_full(), sink, record, clock=clock, one_message=True)
    assert len(sink.messages) == 1
    final = sink.messages[0].versions[-1]
    assert final.endswith("*⚠️ reply blocked by the safety filter*")
    assert len(final) <= DISCORD_LIMIT
    assert record.calls[-1] == (final.split("\n\n*⚠️")[0], "safety")
