"""The Gemini provider's HTTP side, against the fake Gemini."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cogs.ai.prompting import text_part
from tests.fakes.gemini_server import FakeGemini
from utils.gemini import GeminiProvider
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
