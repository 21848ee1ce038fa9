"""Loading the embedding model never holds back READY.

The model takes 5-20 s to load on a small machine; the bot must connect meanwhile
(replies go without memory until it has loaded). Here the model cannot finish
loading until the bot is READY: a thread holds the process-wide model-loading lock,
as a load of the same weights already under way would, and lets go only once READY
has been logged (or after 30 s, so a start-up that waited for the model fails this
test by its order instead of hanging it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from config import Settings
from tests.conftest import StartBot, eventually
from utils.memory import embedder
from utils.memory.embedder import SentenceEmbedder

READY = "ready as"
LOADED = "memory: embedding model all-MiniLM-L6-v2 loaded in"


@pytest.mark.slow
async def test_the_bot_is_ready_before_its_embedding_model_has_loaded(
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    sentence_embedder: SentenceEmbedder,  # the weights, so the load is quick once let go
    caplog: pytest.LogCaptureFixture,
) -> None:
    def messages() -> list[str]:
        return [record.getMessage() for record in caplog.records]

    release = threading.Event()
    held = threading.Event()

    def hold_the_model() -> None:
        with embedder._LOAD_LOCK:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_model, daemon=True)
    holder.start()
    held.wait(5)
    try:
        with caplog.at_level(logging.INFO):
            bot = await start_bot(make_settings(memory_enabled=True))
            await eventually(lambda: any(READY in m for m in messages()))
            release.set()
            await eventually(lambda: any(LOADED in m for m in messages()), within=30)
    finally:
        release.set()
    assert bot.memory is not None
    [ready] = [i for i, m in enumerate(messages()) if READY in m]
    [loaded] = [i for i, m in enumerate(messages()) if LOADED in m]
    assert ready < loaded, messages()
