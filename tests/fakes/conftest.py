"""Fixtures for the fakes' own tests: a fake Gemini server and the real client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google import genai
from google.genai import types

from tests.fakes.gemini_server import FakeGemini


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def client(fake: FakeGemini) -> AsyncIterator[genai.client.AsyncClient]:
    # The fake is plain HTTP: turning TLS off skips ~80 ms of CA loading per client.
    options = types.HttpOptions(
        base_url=fake.url,
        timeout=2000,
        client_args={"verify": False},
        async_client_args={"ssl": False},
    )
    async with genai.Client(api_key="test-key", http_options=options).aio as aio:
        yield aio
