"""Metrics recorded by the chat engine and the Gemini provider, read from their registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from google.genai import errors

from cogs.ai.chat import ChatEngine
from cogs.ai.personas import SHIPPED_DIR, load_personas
from cogs.ai.prompting import UserInput
from cogs.ai.records import Place
from cogs.ai.store import ChatStore
from tests.fakes.gemini_server import FakeGemini
from utils.db import Database
from utils.gemini import GeminiProvider
from utils.gemini_errors import error_kind
from utils.gemini_replies import AIError
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService
from utils.metrics import AI_OUTCOMES, GEMINI_ERROR_KINDS, Metrics
from utils.reliability.circuit_breaker import CircuitBreaker, CircuitOpenError
from utils.usage import UsageStore


class Shown:
    """A message of the reply, as the list sink keeps it."""

    def __init__(self, sink: ListSink, index: int) -> None:
        self.sink, self.index = sink, index

    @property
    def id(self) -> int:
        return self.index

    async def edit(self, *, content: str) -> None:
        self.sink.contents[self.index] = content


class ListSink:
    def __init__(self) -> None:
        self.contents: list[str] = []

    async def send(self, content: str) -> Shown:
        self.contents.append(content)
        return Shown(self, len(self.contents) - 1)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def provider(gemini_fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    provider = GeminiProvider(
        "test-key",
        CircuitBreaker("gemini", failure_threshold=10),
        base_url=gemini_fake.url,
        model="gemini-test",
        timeout=2,
        max_retries=1,
        sleep=lambda _: asyncio.sleep(0),
        metrics=Metrics(),
    )
    yield provider
    await provider.close()


async def test_a_reply_counts_tokens_errors_and_memory_recall(
    db: Database, tmp_path: Path, gemini_fake: FakeGemini, provider: GeminiProvider
) -> None:
    metrics = provider.metrics
    memory = MemoryService(
        db,
        HashingEmbedder(),
        directory=tmp_path / "memory",
        config=MemoryConfig(consolidation_interval=0),
    )
    await memory.start()
    await memory.add_fact(Scope("guild", 1), 7, "alice", "My cat is named Whiskers.")
    engine = ChatEngine(
        provider,
        ChatStore(db),
        UsageStore(db),
        load_personas(SHIPPED_DIR),
        default_persona="default",
        edit_interval=0.0,
        memory=memory,
        metrics=metrics,
    )
    gemini_fake.fail(429)
    gemini_fake.reply(
        "Whiskers, I think.", usage={"promptTokenCount": 30, "candidatesTokenCount": 4}
    )
    sink = ListSink()
    try:
        await engine.answer(
            Place(1, 2, "a test channel"),
            7,
            100,
            UserInput("alice", "my cat's name?"),
            sink,
            deadline=asyncio.get_running_loop().time() + 30,
        )
    finally:
        await engine.close()
        await memory.close()
    assert sink.contents == ["Whiskers, I think."]
    assert "Whiskers" in gemini_fake.requests[-1].system_text
    assert sample(metrics, "gembot_memory_recall_seconds_count") == 1
    assert sample(metrics, "gembot_gemini_tokens_total", direction="in") == 30
    assert sample(metrics, "gembot_gemini_tokens_total", direction="out") == 4
    assert sample(metrics, "gembot_gemini_errors_total", kind="rate_limited") == 1


async def test_a_background_summary_the_database_fails_is_logged_not_left_unretrieved(
    db: Database, provider: GeminiProvider, caplog: pytest.LogCaptureFixture
) -> None:
    engine = ChatEngine(
        provider,
        ChatStore(db),
        UsageStore(db),
        load_personas(SHIPPED_DIR),
        default_persona="default",
        edit_interval=0.0,
    )
    await db.execute("DROP TABLE ai_channels")  # a database error in the summary's reads
    engine.summaries.later(Place(1, 2, "a test channel"))
    (task,) = engine.summaries._running.values()
    await task  # raises if the failure escaped the task
    assert "summary of channel 2 could not be read or stored" in caplog.text


async def test_a_broken_stream_counts_its_error(
    gemini_fake: FakeGemini, provider: GeminiProvider
) -> None:
    gemini_fake.fail_stream_after(["Half a "], status=503)
    with pytest.raises(AIError, match="cut off"):
        async for _ in provider.stream([{"role": "user", "parts": [{"text": "Hi"}]}]):
            pass
    assert sample(provider.metrics, "gembot_gemini_errors_total", kind="server") == 1


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (errors.ClientError(429, {"error": {"message": "quota"}}), "rate_limited"),
        (errors.ClientError(404, {"error": {"message": "no model"}}), "model_unavailable"),
        (errors.ClientError(400, {"error": {"message": "bad"}}), "refused"),
        (errors.ServerError(503, {"error": {"message": "busy"}}), "server"),
        (TimeoutError(), "timeout"),
        (aiohttp.ClientConnectionError(), "network"),
        (CircuitOpenError("gemini", 3.0), "circuit_open"),
    ],
)
def test_error_kinds(error: BaseException, kind: str) -> None:
    assert error_kind(error) == kind
    assert kind in GEMINI_ERROR_KINDS  # exported at 0 from the start


def test_labelled_counters_are_exported_at_zero_before_their_first_event() -> None:
    """A series that appears at 1 hides its first event from rate() and increase(): an
    alert on Gemini errors would miss the first of each kind after every restart."""
    metrics = Metrics()
    expected = [
        *(("gembot_ai_replies_total", {"outcome": o}) for o in AI_OUTCOMES),
        *(("gembot_gemini_errors_total", {"kind": k}) for k in GEMINI_ERROR_KINDS),
        *(("gembot_messages_answered_total", {"kind": k}) for k in ("ai", "command")),
        *(("gembot_gemini_tokens_total", {"direction": d}) for d in ("in", "out")),
    ]
    for name, labels in expected:
        assert metrics.registry.get_sample_value(name, labels) == 0.0, (name, labels)


async def test_reply_timer_times_from_the_request_to_first_and_final_text() -> None:
    metrics = Metrics()
    timer = metrics.reply()
    sink = timer.watch(ListSink())
    await asyncio.sleep(0.05)
    await sink.send("first")
    await sink.send("second")  # only the first send is the first visible text
    await asyncio.sleep(0.05)
    elapsed = timer.finish("ok")
    assert timer.first_text is not None and 0.05 <= timer.first_text < elapsed
    assert sample(metrics, "gembot_ai_reply_first_text_seconds_count") == 1
    assert sample(metrics, "gembot_ai_reply_seconds_sum") == pytest.approx(elapsed)
    assert sample(metrics, "gembot_messages_answered_total", kind="ai") == 1

    nothing_shown = metrics.reply()
    nothing_shown.finish("error")
    assert sample(metrics, "gembot_ai_replies_total", outcome="error") == 1
    assert sample(metrics, "gembot_ai_reply_seconds_count") == 1, "only replies shown are timed"
    assert sample(metrics, "gembot_messages_answered_total", kind="ai") == 1
