"""The Gemini provider against answers that begin oddly: error pages that claim to be
JSON, streams whose first events carry nothing, replies stopped before any words,
refusals that are the owner's to fix."""

from __future__ import annotations

import json

import pytest
from google.genai import types

from cogs.ai.prompting import text_part
from tests.fakes.gemini_payloads import sse
from tests.fakes.gemini_server import FakeGemini
from tests.unit.test_gemini import collect, provider_for
from utils.gemini_replies import AIError, ReplyStopped

HI: list[types.ContentUnionDict] = [{"role": "user", "parts": [text_part("Hi")]}]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"<html>502 Bad Gateway</html>", 502, id="a proxy's error page"),
        pytest.param(b"<html>Welcome</html>", 200, id="a page that is no answer"),
    ],
)
async def test_an_answer_labelled_json_that_is_not_is_tried_again(
    gemini_fake: FakeGemini, body: bytes, status: int
) -> None:
    """A proxy may send its error page as `application/json`: a failed try, not a crash."""
    provider = provider_for(gemini_fake)
    try:
        gemini_fake.answer_raw(body, status=status)
        assert (await provider.generate(HI)).text == "ok"
        gemini_fake.answer_raw(body, status=status)
        assert await collect(provider) == "ok"
    finally:
        await provider.close()
    assert len(gemini_fake.requests) == 4
    assert provider.breaker.failures == 0


async def test_a_stream_that_ends_before_its_first_words_is_tried_again(
    gemini_fake: FakeGemini,
) -> None:
    """Events with no candidates (usage only), then the end: nothing was shown, so it is
    a failed try, not a reply cut off."""
    gemini_fake.answer_raw(sse({"usageMetadata": {"promptTokenCount": 3}}))
    gemini_fake.reply(["Hello ", "there."])
    provider = provider_for(gemini_fake)
    try:
        assert await collect(provider) == "Hello there."
    finally:
        await provider.close()
    assert len(gemini_fake.requests) == 2


async def test_a_reply_at_the_length_limit_before_any_words_says_so(
    gemini_fake: FakeGemini,
) -> None:
    gemini_fake.reply([""], finish_reason="MAX_TOKENS")
    provider = provider_for(gemini_fake)
    try:
        with pytest.raises(ReplyStopped) as info:
            await collect(provider)
    finally:
        await provider.close()
    assert info.value.reason == "length"
    assert str(info.value) == (
        "I can't answer that: the AI reached its length limit before writing anything."
    )


async def test_a_region_or_billing_refusal_is_named_the_owners_to_fix(
    gemini_fake: FakeGemini,
) -> None:
    """Google refuses every request from a region it does not serve (or a free tier not
    offered there): not the asker's message, but the bot's account is at fault."""
    error = {
        "code": 400,
        "message": "User location is not supported for the API use.",
        "status": "FAILED_PRECONDITION",
    }
    gemini_fake.answer_raw(json.dumps({"error": error}).encode(), status=400)
    provider = provider_for(gemini_fake, fallback_models=("gemini-b",))
    try:
        with pytest.raises(AIError) as info:
            await collect(provider)
    finally:
        await provider.close()
    assert str(info.value) == (
        "The AI service refused the bot's account (its region or billing); "
        "the bot's owner needs to check it."
    )
    assert len(gemini_fake.requests) == 1
