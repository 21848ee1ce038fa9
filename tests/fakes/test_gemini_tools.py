"""Checks that the real google-genai client understands the fake's tools: function calls,
thought signatures, Google Search and URL context grounding, and the requests Gemini refuses.
"""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_server import FakeGemini

MODEL = "gemini-3-flash-preview"
LOOKUP = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(name="lookup", description="Find a fact."),
        types.FunctionDeclaration(name="remember", description="Store a fact."),
    ]
)
TOOLS_CONFIG = types.GenerateContentConfig(
    tools=[LOOKUP],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    tool_config=types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.AUTO
        )
    ),
)


def answers(response: types.GenerateContentResponse) -> types.Content:
    """The user turn answering every call of ``response``, echoing each call's id."""
    return types.Content(
        role="user",
        parts=[
            types.Part(
                function_response=types.FunctionResponse(
                    id=call.id, name=call.name, response={"result": f"{call.name} done"}
                )
            )
            for call in response.function_calls or []
        ],
    )


async def call_turn(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> tuple[types.Content, types.GenerateContentResponse]:
    """Ask once and get a turn of two function calls; returns the user turn and the reply."""
    fake.reply_function_calls(
        [("lookup", {"q": "moon"}), ("remember", {"fact": "round"})], text="Checking."
    )
    question = types.Content(role="user", parts=[types.Part(text="Is the moon round?")])
    response = await client.models.generate_content(
        model=MODEL, contents=[question], config=TOOLS_CONFIG
    )
    return question, response


async def test_several_function_calls_in_one_turn(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    _, response = await call_turn(fake, client)

    calls = response.function_calls or []
    assert [(c.name, c.args) for c in calls] == [
        ("lookup", {"q": "moon"}),
        ("remember", {"fact": "round"}),
    ]
    assert all(c.id for c in calls) and calls[0].id != calls[1].id
    text, first, second = response.candidates[0].content.parts
    assert response.text == text.text == "Checking."
    assert isinstance(first.thought_signature, bytes) and first.thought_signature
    assert second.thought_signature is None, "Gemini signs only the first call of a turn"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.candidates_token_count > 1


async def test_streamed_calls_arrive_whole_one_per_chunk(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.reply_function_calls([("lookup", {"q": "a"}), ("lookup", {"q": "b"})], text="One moment")

    chunks = [
        c
        async for c in await client.models.generate_content_stream(
            model=MODEL, contents="hi", config=TOOLS_CONFIG
        )
    ]

    texts = [c.text for c in chunks if c.function_calls is None]
    calls = [c.function_calls for c in chunks if c.function_calls is not None]
    assert "".join(t or "" for t in texts) == "One moment"
    assert [[(f.name, f.args) for f in fs] for fs in calls] == [
        [("lookup", {"q": "a"})],
        [("lookup", {"q": "b"})],
    ], "the SDK does not merge chunks: each call comes in its own response"
    assert chunks[-1].text is None, "no text parts: .text is None"
    assert [c.candidates[0].finish_reason for c in chunks[-2:]] == [None, types.FinishReason.STOP]
    assert chunks[-1].usage_metadata.total_token_count > 0


async def test_function_responses_and_signature_round_trip(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.require_thought_signatures = True
    question, response = await call_turn(fake, client)
    fake.reply("The moon is round.")

    final = await client.models.generate_content(
        model=MODEL,
        contents=[question, response.candidates[0].content, answers(response)],
        config=TOOLS_CONFIG,
    )

    assert final.text == "The moon is round."
    request = fake.requests[-1]
    assert request.function_responses == [
        ("lookup", {"result": "lookup done"}),
        ("remember", {"result": "remember done"}),
    ]
    assert request.declared_functions == ["lookup", "remember"]
    assert request.builtin_tools == set()
    assert request.function_calling_mode == "AUTO"
    sent = request.contents[1]["parts"][1]
    assert "thoughtSignature" in sent, "the SDK sends the signature back (URL-safe base64)"


@pytest.mark.parametrize("signature", [None, b"forged"], ids=["missing", "forged"])
async def test_unsigned_call_is_refused_when_signatures_are_required(
    fake: FakeGemini, client: genai.client.AsyncClient, signature: bytes | None
) -> None:
    fake.require_thought_signatures = True
    question, response = await call_turn(fake, client)
    turn = response.candidates[0].content
    parts = [turn.parts[0], turn.parts[1].model_copy(update={"thought_signature": signature})]
    unsigned = types.Content(role="model", parts=[*parts, *turn.parts[2:]])
    fake.reply("scripted")

    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(
            model=MODEL, contents=[question, unsigned, answers(response)], config=TOOLS_CONFIG
        )

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "Function call is missing a thought_signature" in str(caught.value.message)
    assert "`default_api:lookup` , position 2" in str(caught.value.message)
    again = await client.models.generate_content(model=MODEL, contents="hi")
    assert again.text == "scripted", "a refused request does not consume a script"


async def test_signatures_are_checked_in_the_current_exchange_only(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    question, response = await call_turn(fake, client)
    turn = response.candidates[0].content
    stripped = types.Content(
        role="model",
        parts=[p.model_copy(update={"thought_signature": None}) for p in turn.parts or []],
    )
    history = [question, stripped, answers(response)]
    later = types.Content(role="user", parts=[types.Part(text="And the sun?")])
    fake.require_thought_signatures = True

    old = await client.models.generate_content(model=MODEL, contents=[*history, later])
    with pytest.raises(errors.ClientError):
        await client.models.generate_content(model=MODEL, contents=history)

    assert old.text == "ok"


async def test_every_call_of_a_turn_needs_a_response(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    question, response = await call_turn(fake, client)
    partial = answers(response)
    partial.parts = (partial.parts or [])[:1]

    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(
            model=MODEL, contents=[question, response.candidates[0].content, partial]
        )

    assert caught.value.code == 400
    assert "number of function response parts is equal" in str(caught.value.message)


async def test_gemini_2_style_calls_without_ids_or_signatures(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.reply_function_calls([("lookup", {})], call_ids=False, thought_signature=False)

    response = await client.models.generate_content(model=MODEL, contents="hi")

    [part] = response.candidates[0].content.parts
    assert (part.function_call.name, part.function_call.id) == ("lookup", None)
    assert part.thought_signature is None


SOURCES = [("https://example.org/moon", "example.org"), ("https://nasa.example/m", "nasa.example")]


async def test_google_search_grounding_metadata(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    answer = "The Moon is round. Its diameter is 3474 km."
    fake.reply(answer, grounding=SOURCES, search_queries=["moon shape", "moon diameter"])
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])

    response = await client.models.generate_content(model=MODEL, contents="moon?", config=config)

    metadata = response.candidates[0].grounding_metadata
    assert [(c.web.uri, c.web.title) for c in metadata.grounding_chunks] == SOURCES
    assert metadata.web_search_queries == ["moon shape", "moon diameter"]
    assert "moon diameter" in metadata.search_entry_point.rendered_content
    raw = answer.encode()
    cited = [
        (raw[s.segment.start_index or 0 : s.segment.end_index].decode(), s.grounding_chunk_indices)
        for s in metadata.grounding_supports
    ]
    assert cited == [("The Moon is round.", [0]), ("Its diameter is 3474 km.", [1])]
    assert metadata.grounding_supports[0].segment.start_index is None, "proto JSON omits a 0"
    assert fake.requests[-1].builtin_tools == {"google_search"}


async def test_streamed_grounding_comes_on_the_last_chunk(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    fake.reply(["Grounded ", "answer."], grounding=SOURCES[:1], search_queries=["q"])

    chunks = [
        c async for c in await client.models.generate_content_stream(model=MODEL, contents="x")
    ]

    assert [c.candidates[0].grounding_metadata is not None for c in chunks] == [False, True]
    assert chunks[-1].candidates[0].grounding_metadata.grounding_chunks[0].web.uri == SOURCES[0][0]


async def test_url_context_metadata(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.reply("The page says hi.", url_context=["https://example.org/page"])
    config = types.GenerateContentConfig(tools=[types.Tool(url_context=types.UrlContext())])

    response = await client.models.generate_content(model=MODEL, contents="read it", config=config)

    [url] = response.candidates[0].url_context_metadata.url_metadata
    assert url.retrieved_url == "https://example.org/page"
    assert url.url_retrieval_status == types.UrlRetrievalStatus.URL_RETRIEVAL_STATUS_SUCCESS
    assert response.candidates[0].grounding_metadata is None
    assert fake.requests[-1].builtin_tools == {"url_context"}


async def test_mixed_tools_are_refused_when_the_model_cannot_mix(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    search = types.Tool(google_search=types.GoogleSearch(), url_context=types.UrlContext())
    mixed = types.GenerateContentConfig(tools=[LOOKUP, search])
    builtin_only = types.GenerateContentConfig(tools=[search])

    accepted = await client.models.generate_content(model=MODEL, contents="x", config=mixed)
    fake.reject_mixed_tools = True
    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(model=MODEL, contents="x", config=mixed)
    alone = await client.models.generate_content(model=MODEL, contents="x", config=builtin_only)

    assert accepted.text == alone.text == "ok"
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "Tool use with function calling is unsupported" in str(caught.value.message)
    refused = fake.requests[1]
    assert refused.declared_functions == ["lookup", "remember"]
    assert refused.builtin_tools == {"google_search", "url_context"}
