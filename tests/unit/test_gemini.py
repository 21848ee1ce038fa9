"""The Gemini provider's HTTP side, against the fake Gemini."""

from __future__ import annotations

import asyncio
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.genai import types

from cogs.ai.prompting import text_part
from tests.fakes.gemini_payloads import sse
from tests.fakes.gemini_server import FakeGemini
from utils.gemini import PATIENCE, GeminiProvider
from utils.gemini_replies import AIBusyError, AIError, Reply, ReplyStopped, Usage
from utils.reliability.circuit_breaker import CircuitBreaker


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_requests_go_through_the_proxy_the_environment_names(
    gemini_fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens at the base URL: only the proxy (the fake) can answer.
    target = f"127.0.0.1:{closed_port()}"
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, gemini_fake.url)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    gemini_fake.reply("Through the proxy.")
    provider = GeminiProvider(
        "test-key",
        CircuitBreaker("gemini"),
        base_url=f"http://{target}",
        model="gemini-test",
        timeout=5,
        max_retries=0,
    )
    try:
        reply = await provider.generate([{"role": "user", "parts": [text_part("Hi")]}])
    finally:
        await provider.close()
    assert reply.text == "Through the proxy."
    assert gemini_fake.requests[-1].headers["host"] == target


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def test_a_streamed_reply_needs_no_thread_pool_round_trips(gemini_fake: FakeGemini) -> None:
    """google-genai's default session looks up proxies and netrc in a thread on every
    request; the provider's session does that once, when it is made."""
    provider = GeminiProvider(
        "test-key", CircuitBreaker("gemini"), base_url=gemini_fake.url, model="gemini-test"
    )
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    gemini_fake.reply(["Hello ", "there."])
    try:
        pieces = [
            piece async for piece in provider.stream([{"role": "user", "parts": [text_part("Hi")]}])
        ]
    finally:
        await provider.close()
    assert "".join(pieces) == "Hello there."
    assert executor.submitted == 0


def provider_for(fake: FakeGemini, **options: Any) -> GeminiProvider:
    values: dict[str, Any] = {"model": "gemini-main", "timeout": 5, "base_delay": 0.01}
    values.update(options)
    return GeminiProvider("test-key", CircuitBreaker("gemini"), base_url=fake.url, **values)


HI = [{"role": "user", "parts": [text_part("Hi")]}]


async def collect(provider: GeminiProvider, reply: Reply | None = None, **options: Any) -> str:
    return "".join([piece async for piece in provider.stream(HI, reply=reply, **options)])


async def test_fallback_models_answer_once_retries_on_the_main_model_are_exhausted(
    gemini_fake: FakeGemini,
) -> None:
    gemini_fake.fail(503, times=3, model="gemini-main")
    gemini_fake.fail(500, times=3, model="gemini-b")
    gemini_fake.reply("From the second fallback.", model="gemini-c")
    provider = provider_for(gemini_fake, max_retries=2, fallback_models=("gemini-b", "gemini-c"))
    reply = Reply()
    try:
        assert await collect(provider, reply) == "From the second fallback."
    finally:
        await provider.close()
    assert [r.model for r in gemini_fake.requests] == ["gemini-main"] * 3 + ["gemini-b"] * 3 + [
        "gemini-c"
    ]
    assert reply.model == "gemini-c"
    # Six failed tries would open a breaker of threshold 5 if each counted on its own.
    assert provider.breaker.state.value == "closed" and provider.breaker.failures == 0


async def test_a_model_out_of_quota_moves_to_the_next_at_once(gemini_fake: FakeGemini) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gemini_fake.fail(429, retry_delay=20, model="gemini-main")
    gemini_fake.reply("Fallback here.", model="gemini-b")
    provider = provider_for(gemini_fake, fallback_models=("gemini-b",), sleep=sleep)
    try:
        assert await collect(provider) == "Fallback here."
    finally:
        await provider.close()
    assert [r.model for r in gemini_fake.requests] == ["gemini-main", "gemini-b"]
    assert slept == [], "no retry, no wait on the exhausted model"


async def test_the_last_model_out_of_quota_is_retried_after_the_delay_google_asks(
    gemini_fake: FakeGemini,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gemini_fake.fail(429, retry_delay=2, model="gemini-b")
    gemini_fake.model_unavailable = {"gemini-main"}
    provider = provider_for(gemini_fake, fallback_models=("gemini-b",), sleep=sleep)
    try:
        assert await collect(provider) == "ok"
    finally:
        await provider.close()
    assert [r.model for r in gemini_fake.requests] == ["gemini-main", "gemini-b", "gemini-b"]
    assert len(slept) == 1 and slept[0] >= 2


async def test_a_wait_longer_than_the_longest_backoff_is_not_waited_for(
    gemini_fake: FakeGemini,
) -> None:
    """A quota used up for the day: trying again within the backoff would fail again."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gemini_fake.fail(429, retry_delay=3600)
    provider = provider_for(gemini_fake, sleep=sleep)
    try:
        with pytest.raises(AIBusyError, match="busy; please try again in 60 minutes"):
            await collect(provider)
    finally:
        await provider.close()
    assert slept == [] and len(gemini_fake.requests) == 1


async def test_every_model_busy_gives_the_shortest_wait_any_asked_for(
    gemini_fake: FakeGemini,
) -> None:
    """The soonest a user can try again is the shortest wait a model asked for (its latest
    ask: the main model's first 5 s were waited out before it asked for 40 s)."""

    async def sleep(seconds: float) -> None:
        pass

    gemini_fake.fail(503, retry_delay=5, model="gemini-main")
    gemini_fake.fail(429, retry_delay=40, model="gemini-main")
    gemini_fake.fail(429, retry_delay=20, model="gemini-b")
    gemini_fake.fail(429, retry_delay=3600, model="gemini-c")
    provider = provider_for(gemini_fake, fallback_models=("gemini-b", "gemini-c"), sleep=sleep)
    try:
        with pytest.raises(AIBusyError, match="busy; please try again in 20 seconds") as busy:
            await collect(provider)
    finally:
        await provider.close()
    assert busy.value.retry_after == 20
    assert [r.model for r in gemini_fake.requests] == ["gemini-main"] * 2 + [
        "gemini-b",
        "gemini-c",
    ]


async def test_a_busy_model_that_asks_for_no_wait_is_not_said_to_ask_for_0_seconds(
    gemini_fake: FakeGemini,
) -> None:
    """A proxy's `Retry-After: 0` on every try: "try again in 0 seconds" reads as a bug."""

    async def sleep(seconds: float) -> None:
        pass

    gemini_fake.fail(429, times=4, retry_after=0)
    provider = provider_for(gemini_fake, sleep=sleep)
    try:
        with pytest.raises(AIBusyError, match=r"busy; please try again in 1 second\."):
            await collect(provider)
    finally:
        await provider.close()


async def test_a_reply_waits_out_only_a_short_rate_limit(gemini_fake: FakeGemini) -> None:
    """Someone waits for a reply (it has a deadline): a wait past PATIENCE is not waited
    out but told; background work (no deadline) waits up to the longest backoff."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    provider = provider_for(gemini_fake, sleep=sleep)
    deadline = asyncio.get_running_loop().time() + 45
    try:
        gemini_fake.fail(429, retry_delay=PATIENCE - 1)
        assert await collect(provider, deadline=deadline) == "ok"
        assert len(slept) == 1 and slept[0] >= PATIENCE - 1
        gemini_fake.fail(429, retry_delay=PATIENCE + 15)
        with pytest.raises(AIBusyError, match="busy; please try again in 25 seconds") as busy:
            await collect(provider, deadline=deadline)
        assert busy.value.retry_after == PATIENCE + 15 and len(slept) == 1
        gemini_fake.fail(429, retry_delay=PATIENCE + 15)
        assert (await provider.generate(HI)).text == "ok"
    finally:
        await provider.close()
    assert len(slept) == 2 and slept[1] >= PATIENCE + 15


async def test_a_refused_request_does_not_try_the_fallbacks(gemini_fake: FakeGemini) -> None:
    gemini_fake.fail(400)
    provider = provider_for(gemini_fake, fallback_models=("gemini-b",))
    try:
        with pytest.raises(AIError, match="could not process"):
            await collect(provider)
    finally:
        await provider.close()
    assert [r.model for r in gemini_fake.requests] == ["gemini-main"]


async def test_a_dropped_connection_is_tried_again_at_once(gemini_fake: FakeGemini) -> None:
    """google-genai on its own sleeps 1 to 10 s before trying a dropped connection again;
    the provider's backoff (here at most 0.01 s) is the only wait."""
    gemini_fake.drop()
    provider = provider_for(gemini_fake)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        assert await collect(provider) == "ok"
    finally:
        await provider.close()
    assert loop.time() - started < 0.9
    assert len(gemini_fake.requests) == 2


async def test_the_next_try_waits_as_long_as_retry_after_asks(gemini_fake: FakeGemini) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gemini_fake.fail(503, retry_after=3)
    provider = provider_for(gemini_fake, sleep=sleep)
    try:
        assert await collect(provider) == "ok"
    finally:
        await provider.close()
    assert len(gemini_fake.requests) == 2
    assert len(slept) == 1 and slept[0] >= 3


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"error": "busy"}', id="error as text"),
        pytest.param(
            b'{"error": {"details": ["x", {"@type": "RetryInfo", "retryDelay": "1.2.3s"}]}}',
            id="odd details",
        ),
    ],
)
async def test_a_rate_limit_in_a_proxys_words_is_retried(
    gemini_fake: FakeGemini, body: bytes
) -> None:
    gemini_fake.answer_raw(body, status=429)
    provider = provider_for(gemini_fake)
    try:
        assert await collect(provider) == "ok"
    finally:
        await provider.close()
    assert len(gemini_fake.requests) == 2


async def test_the_deadline_bounds_the_wait_across_retries_and_fallbacks(
    gemini_fake: FakeGemini,
) -> None:
    for model in ("gemini-main", "gemini-b"):
        for _ in range(4):
            gemini_fake.hang(model=model)
    provider = provider_for(gemini_fake, timeout=2, max_retries=3, fallback_models=("gemini-b",))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(AIError, match="not answering"):
            await collect(provider, deadline=started + 0.6)
    finally:
        await provider.close()
    assert loop.time() - started < 1.0
    assert gemini_fake.requests, "it did try"


UNREADABLE = [
    pytest.param(b"", id="empty stream"),
    pytest.param(b'data: {"candidates": [\r\n\r\n', id="not JSON"),
    pytest.param(b"data: \xff\xfe\r\n\r\n", id="not UTF-8"),
]


@pytest.mark.parametrize("body", UNREADABLE)
async def test_an_unreadable_answer_is_retried(gemini_fake: FakeGemini, body: bytes) -> None:
    gemini_fake.answer_raw(body)
    provider = provider_for(gemini_fake)
    try:
        assert await collect(provider) == "ok"
    finally:
        await provider.close()
    assert len(gemini_fake.requests) == 2
    assert provider.breaker.failures == 0


@pytest.mark.parametrize("body", UNREADABLE)
async def test_answers_that_stay_unreadable_are_not_answering(
    gemini_fake: FakeGemini, body: bytes
) -> None:
    for _ in range(2):
        gemini_fake.answer_raw(body)
    provider = provider_for(gemini_fake, max_retries=1)
    try:
        with pytest.raises(AIError, match="not answering"):
            await collect(provider)
    finally:
        await provider.close()
    assert len(gemini_fake.requests) == 2
    assert provider.breaker.failures == 2, "a provider that answers garbage is struggling"


async def test_an_unreadable_event_mid_stream_cuts_the_reply_off(gemini_fake: FakeGemini) -> None:
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": "The start "}]}}]}
    gemini_fake.answer_raw(sse(first) + b"data: {oops\r\n\r\n")
    provider = provider_for(gemini_fake)
    pieces: list[str] = []
    try:
        with pytest.raises(AIError, match="cut off by an AI error"):
            async for piece in provider.stream(HI):
                pieces.append(piece)
    finally:
        await provider.close()
    assert pieces == ["The start "]


async def test_a_stream_that_ends_without_a_finish_reason_is_cut_off(
    gemini_fake: FakeGemini,
) -> None:
    gemini_fake.reply(["The start ", "of it"], finish_reason=None)
    provider = provider_for(gemini_fake)
    pieces: list[str] = []
    try:
        with pytest.raises(AIError, match="cut off by an AI error") as info:
            async for piece in provider.stream(HI):
                pieces.append(piece)
    finally:
        await provider.close()
    assert "".join(pieces) == "The start of it"
    assert not isinstance(info.value, ReplyStopped)


async def test_usage_counts_thinking_as_output_and_tool_prompts_as_input(
    gemini_fake: FakeGemini,
) -> None:
    """What Google bills: thoughts are output tokens, tool-use prompts input tokens."""
    usage = {
        "promptTokenCount": 100,
        "toolUsePromptTokenCount": 20,
        "candidatesTokenCount": 10,
        "thoughtsTokenCount": 900,
    }
    gemini_fake.reply(["Short ", "answer."], usage=usage)
    gemini_fake.reply("Short answer.", usage=usage)
    provider = provider_for(gemini_fake)
    streamed = Reply()
    try:
        await collect(provider, streamed)
        whole = await provider.generate(HI)
    finally:
        await provider.close()
    assert streamed.usage == whole.usage == Usage(prompt_tokens=120, output_tokens=910)


@pytest.mark.parametrize(
    ("finish", "reason", "note"),
    [
        ("SAFETY", "safety", "reply blocked by the safety filter"),
        ("MAX_TOKENS", "length", "reply cut at the length limit"),
        ("RECITATION", "recitation", "reply blocked for repeating a protected source"),
        ("PROHIBITED_CONTENT", "prohibited", "reply blocked as prohibited content"),
        ("BLOCKLIST", "blocklist", "reply blocked by a list of forbidden terms"),
        ("SPII", "spii", "reply blocked for sensitive personal information"),
        ("OTHER", "stopped", "reply stopped by the AI service"),
    ],
)
async def test_a_reply_stopped_early_says_why_after_its_text(
    gemini_fake: FakeGemini, finish: str, reason: str, note: str
) -> None:
    gemini_fake.reply(["The start ", "of it", ""], finish_reason=finish)
    provider = provider_for(gemini_fake)
    pieces: list[str] = []
    try:
        with pytest.raises(ReplyStopped) as info:
            async for piece in provider.stream(HI):
                pieces.append(piece)
    finally:
        await provider.close()
    assert "".join(pieces) == "The start of it"
    assert info.value.reason == reason and str(info.value) == note


async def test_a_blocked_reply_without_text_is_refused_in_one_line(
    gemini_fake: FakeGemini,
) -> None:
    gemini_fake.reply([""], finish_reason="SAFETY")
    gemini_fake.block_prompt("PROHIBITED_CONTENT")
    provider = provider_for(gemini_fake)
    try:
        with pytest.raises(ReplyStopped) as reply_blocked:
            await collect(provider)
        with pytest.raises(ReplyStopped) as prompt_blocked:
            await collect(provider)
    finally:
        await provider.close()
    assert str(reply_blocked.value) == (
        "I can't answer that: the reply was blocked by the safety filter."
    )
    assert reply_blocked.value.reason == "safety"
    assert str(prompt_blocked.value) == (
        "I can't answer that: your message was blocked as prohibited content."
    )
    assert prompt_blocked.value.reason == "prohibited"
    assert provider.breaker.failures == 0


async def test_safety_levels_are_sent_for_the_four_categories(gemini_fake: FakeGemini) -> None:
    provider = provider_for(gemini_fake)
    try:
        await collect(provider, safety="high")
        await collect(provider)
    finally:
        await provider.close()
    strict, default = gemini_fake.requests
    sent = strict.json["generationConfig"].get("safetySettings") or strict.json["safetySettings"]
    assert {s["category"] for s in sent} == {
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    }
    assert {s["threshold"] for s in sent} == {"BLOCK_ONLY_HIGH"}
    assert "safetySettings" not in json.dumps(default.json), "default: Google's own thresholds"


def test_model_turn_joins_streamed_text_and_keeps_signatures_and_calls() -> None:
    call = types.FunctionCall(id="c1", name="member_count", args={})
    reply = Reply(
        parts=[
            types.Part(text="Let me "),
            types.Part(text="check."),
            types.Part(text="thinking", thought=True),
            types.Part(function_call=call, thought_signature=b"sig"),
            types.Part(function_call=types.FunctionCall(name="server_info", args={})),
            types.Part(text="Then "),
            types.Part(text="more.", thought_signature=b"sig2"),
            types.Part(text=" end"),
        ]
    )
    turn = reply.model_turn()
    assert turn.role == "model"
    assert turn.parts == [
        types.Part(text="Let me check."),
        types.Part(text="thinking", thought=True),
        types.Part(function_call=call, thought_signature=b"sig"),
        types.Part(function_call=types.FunctionCall(name="server_info", args={})),
        types.Part(text="Then "),
        types.Part(text="more.", thought_signature=b"sig2"),
        types.Part(text=" end"),
    ]
    assert Reply().model_turn() == types.Content(role="model", parts=[])
