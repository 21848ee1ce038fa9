"""Checks that the real google-genai async client understands the fake Gemini server."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_request import GeminiRequest
from tests.fakes.gemini_server import FakeGemini

MODEL = "gemini-2.5-flash"

# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


async def test_text_reply(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.reply("Hello there, human.")

    response = await client.models.generate_content(model=MODEL, contents="hi")

    assert response.text == "Hello there, human."
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == MODEL
    usage = response.usage_metadata
    assert usage.candidates_token_count == len("Hello there, human.") // 4 + 1
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count


async def test_a_fake_that_does_not_record_answers_and_keeps_nothing(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.record = False
    fake.reply("Still here.")

    response = await client.models.generate_content(model=MODEL, contents="hi")

    assert response.text == "Still here."
    assert fake.requests == []


async def test_stream_arrives_in_scripted_chunks_with_delays(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.reply(["Hel", "lo ", "world"], chunk_delay=0.08)

    start = time.monotonic()
    arrivals = []
    async for chunk in await client.models.generate_content_stream(model=MODEL, contents="hi"):
        arrivals.append((time.monotonic() - start, chunk))

    assert [c.text for _, c in arrivals] == ["Hel", "lo ", "world"]
    times = [t for t, _ in arrivals]
    assert all(later - earlier >= 0.06 for earlier, later in itertools.pairwise(times))
    *partial, (_, last) = arrivals
    assert all(c.candidates[0].finish_reason is None for _, c in partial)
    assert all(c.usage_metadata is None for _, c in partial)
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.total_token_count > 0
    assert fake.requests[-1].query == {"alt": "sse"}


async def test_plain_string_is_streamed_in_several_chunks(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    text = "one two three four five six seven"
    fake.reply(text)

    chunks = [
        c.text async for c in await client.models.generate_content_stream(model=MODEL, contents="x")
    ]

    assert len(chunks) == fake.stream_chunks
    assert "".join(chunks) == text


async def test_429_exposes_retry_info(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.fail(429, retry_delay=1.5)

    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(model=MODEL, contents="hi")

    error = caught.value
    assert error.code == 429
    assert error.status == "RESOURCE_EXHAUSTED"
    # `details` is the whole response body; RetryInfo is found by @type, not position.
    retry = [
        d
        for d in error.details["error"]["details"]
        if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    ]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]


async def test_503_raises_server_error_then_recovers(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.fail(503, times=2)

    for _ in range(2):
        with pytest.raises(errors.ServerError) as caught:
            await client.models.generate_content(model=MODEL, contents="hi")
        assert caught.value.code == 503
        assert caught.value.status == "UNAVAILABLE"
    response = await client.models.generate_content(model=MODEL, contents="hi")

    assert response.text == "ok"
    assert len(fake.requests) == 3  # the SDK does not retry by default


async def test_function_call_part(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.reply_function_call("get_weather", {"city": "Paris", "days": 2})

    response = await client.models.generate_content(model=MODEL, contents="weather?")

    [call] = response.function_calls
    assert call.name == "get_weather"
    assert call.args == {"city": "Paris", "days": 2}


async def test_hang_raises_client_timeout(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.hang()
    config = types.GenerateContentConfig(http_options=types.HttpOptions(timeout=200))

    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await client.models.generate_content(model=MODEL, contents="hi", config=config)

    assert time.monotonic() - start < 1.0


async def test_short_hang_then_default_answer(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.hang(0.1)

    response = await client.models.generate_content(model=MODEL, contents="hi")

    assert response.text == "ok"


async def test_timeout_covers_the_whole_stream(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.reply(["a", "b", "c"], chunk_delay=0.15)
    config = types.GenerateContentConfig(http_options=types.HttpOptions(timeout=250))

    received = []
    with pytest.raises(TimeoutError):
        stream = await client.models.generate_content_stream(
            model=MODEL, contents="hi", config=config
        )
        async for chunk in stream:
            received.append(chunk.text)

    assert received == ["a"]


async def test_stalled_stream_sends_its_chunks_then_goes_silent(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.stall_stream_after(["The answer ", "begins"])
    fake.reply("next")

    received = []
    stream = await client.models.generate_content_stream(model=MODEL, contents="hi")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            async for chunk in stream:
                received.append(chunk.text)

    assert received == ["The answer ", "begins"]
    response = await client.models.generate_content(model=MODEL, contents="again")
    assert response.text == "next", "the next request gets the next script"


async def test_requests_are_recorded(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    config = types.GenerateContentConfig(system_instruction="You are terse.")
    contents = [
        types.Content(role="user", parts=[types.Part(text="first")]),
        types.Content(role="model", parts=[types.Part(text="reply")]),
        types.Content(role="user", parts=[types.Part(text="second")]),
    ]

    await client.models.generate_content(model=MODEL, contents=contents, config=config)

    [request] = fake.requests
    assert request.api_key == "test-key"
    assert (request.version, request.model, request.method) == ("v1", MODEL, "generateContent")
    assert request.system_text == "You are terse."
    assert [c["role"] for c in request.contents] == ["user", "model", "user"]
    assert request.last_user_text == "second"


async def test_v1_and_v1beta_are_served(fake: FakeGemini) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with aiohttp.ClientSession() as session:
        for version in ("v1", "v1beta"):
            url = f"{fake.url}/{version}/models/{MODEL}:generateContent"
            async with session.post(url, json=body, headers={"x-goog-api-key": "k"}) as resp:
                assert resp.status == 200
                data = await resp.json()
            assert data["candidates"][0]["content"] == {"role": "model", "parts": [{"text": "ok"}]}

    assert [r.version for r in fake.requests] == ["v1", "v1beta"]


async def test_default_answer_can_echo(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    def shout(request: GeminiRequest) -> str:
        return request.last_user_text.upper()

    fake.default = shout

    response = await client.models.generate_content(model=MODEL, contents="echo me")

    assert response.text == "ECHO ME"


async def test_unavailable_model_and_per_model_scripts(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.model_unavailable.add("gemini-gone")
    fake.reply("shared")
    fake.reply("only for lite", model="gemini-lite")

    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(model="gemini-gone", contents="hi")
    lite = await client.models.generate_content(model="gemini-lite", contents="hi")
    other = await client.models.generate_content(model=MODEL, contents="hi")

    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert lite.text == "only for lite"
    assert other.text == "shared"


async def test_broken_stream_with_error_event(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.fail_stream_after(["par", "tial"], status=500)

    received = []
    with pytest.raises(errors.ServerError) as caught:
        async for chunk in await client.models.generate_content_stream(model=MODEL, contents="x"):
            received.append(chunk.text)

    assert received == ["par", "tial"]
    assert caught.value.code == 500


async def test_broken_stream_dropped_connection(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.fail_stream_after(["par", "tial"], status=None)

    received = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in await client.models.generate_content_stream(model=MODEL, contents="x"):
            received.append(chunk.text)

    assert received == ["par", "tial"]


async def test_embeddings_are_deterministic(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    result = await client.models.embed_content(
        model="text-embedding-004", contents=["apple", "pear", "apple"]
    )

    first, second, third = (e.values for e in result.embeddings)
    assert len(first) == fake.embedding_dim
    assert first == third
    assert first != second
    assert sum(v * v for v in first) == pytest.approx(1.0)
    assert fake.requests[-1].method == "batchEmbedContents"


async def test_count_tokens(client: genai.client.AsyncClient) -> None:
    result = await client.models.count_tokens(model=MODEL, contents="twelve chars")

    assert result.total_tokens == len("twelve chars") // 4 + 1
