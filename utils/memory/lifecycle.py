"""The running parts every memory job shares: the embedding model, loaded in the
background, the two threads that embed, and the background tasks.

Bulk work (indexing conversation, re-embedding) has a thread of its own, so a query
(or a fact) never waits behind a batch of chunks: with the ONNX model each thread
uses one core, so on two cores a query runs beside a batch.

The model starts loading at `start` (5-20 s on a small machine) in a daemon thread of
its own, so a stop during loading does not wait for it. Until it has loaded, work
that needs it waits for it, except recall, which waits at most `model_wait` and then
answers without memory (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import numpy as np
from discord.ext import tasks

from utils.memory.embedder import Embedder
from utils.tasks import give_way

log = logging.getLogger(__name__)
T = TypeVar("T")
RECENT_TEXTS = 2048  # vectors kept for reuse (3 MB with a 384-d model)


class Runtime:
    """The embedding model and the background tasks of the memory service."""

    def __init__(self, embedder: Embedder, *, model_wait: float) -> None:
        self.embedder = embedder
        self.model_wait = model_wait
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="memory-embed", initializer=give_way)
        self._bulk_pool = ThreadPoolExecutor(
            1, thread_name_prefix="memory-embed-bulk", initializer=give_way
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._model: asyncio.Future[None] | None = None  # done once loading has ended
        self._said_loading = False
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # RECENT_TEXTS, LRU

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def load_model(self) -> None:
        """Start loading the embedding model in a daemon thread; returns at once."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        embedder = self.embedder

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def load() -> None:
            started = time.perf_counter()
            try:
                embedder.load()
            except Exception:  # a thread of its own: log it; using the model tries again
                log.exception("memory: could not load the embedding model %s", embedder.name)
            else:
                took = time.perf_counter() - started
                log.info("memory: embedding model %s loaded in %.1f s", embedder.name, took)
            with contextlib.suppress(RuntimeError):  # the loop has closed: the bot stopped
                loop.call_soon_threadsafe(settle)

        threading.Thread(target=load, name="memory-model-load", daemon=True).start()
        self._model = done

    async def model_loaded(self) -> bool:
        """Whether the model has finished loading, waiting `model_wait` at most for it;
        says once in the log that replies go without memory meanwhile."""
        if self._model is None or self._model.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._model), self.model_wait)
        except TimeoutError:
            if not self._said_loading:
                self._said_loading = True
                log.info(
                    "memory: the embedding model is still loading; "
                    "replies go without memory until it has loaded"
                )
            return False
        return True

    async def embed(self, texts: Sequence[str], *, bulk: bool = False) -> np.ndarray:
        """Unit vectors for `texts`, computed in an embedding thread (once the model
        has loaded, so that thread never waits on loading): the bulk one for `bulk`
        work, else the one queries use. The vectors of the last RECENT_TEXTS texts are
        kept for bulk work: a question, embedded at recall, is a line of the memory of
        its exchange, and a memory that grows keeps its earlier lines."""
        if bulk:
            known = {text: self._recent[text] for text in texts if text in self._recent}
            missing = [text for text in dict.fromkeys(texts) if text not in known]
        else:
            known, missing = {}, list(texts)
        if missing:
            pool = self._bulk_pool if bulk else self._pool
            vectors = await self._in_thread(pool, partial(self.embedder.encode, missing))
            known |= zip(missing, vectors, strict=True)
        self._keep(known)
        return np.stack([known[text] for text in texts])

    async def embed_then(self, text: str, then: Callable[[np.ndarray], T]) -> tuple[np.ndarray, T]:
        """`embed` of a query, and `then` called with its vector in the same trip to the
        thread (a recall's vector search: one hop to a thread instead of two)."""

        def run() -> tuple[np.ndarray, T]:
            [vector] = self.embedder.encode([text])
            return vector, then(vector)

        vector, result = await self._in_thread(self._pool, run)
        self._keep({text: vector})
        return vector, result

    def _keep(self, vectors: dict[str, np.ndarray]) -> None:
        for text, vector in vectors.items():
            self._recent[text] = vector
            self._recent.move_to_end(text)
        while len(self._recent) > RECENT_TEXTS:
            self._recent.popitem(last=False)

    async def embed_memories(self, parts: Sequence[Sequence[str]]) -> np.ndarray:
        """One unit vector per memory, the sum of its parts' vectors (`Memory.embedded`)
        normalised; bulk work."""
        vectors = await self.embed([text for texts in parts for text in texts], bulk=True)
        rows, start = [], 0
        for texts in parts:
            total = vectors[start : start + len(texts)].sum(axis=0)
            rows.append(total / max(float(np.linalg.norm(total)), 1e-12))
            start += len(texts)
        return np.stack(rows).astype(np.float32)

    async def _in_thread(self, pool: ThreadPoolExecutor, work: Callable[[], T]) -> T:
        if self._model is not None:
            await asyncio.shield(self._model)
        return await asyncio.get_running_loop().run_in_executor(pool, work)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def every(
        self, seconds: float, job: Callable[[], Coroutine[Any, Any, None]], name: str
    ) -> None:
        """Run `job` every `seconds` (the first time one interval after the start) until
        `stop`."""
        periodic = tasks.loop(seconds=seconds, name=name)(job)

        @periodic.before_loop
        async def first_interval() -> None:
            await asyncio.sleep(seconds)

        self._tasks.append(periodic.start())

    async def stop(self) -> None:
        """Cancel the background tasks and the embedding threads' queued work."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._bulk_pool.shutdown(wait=False, cancel_futures=True)
