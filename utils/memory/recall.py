"""Recall: the memories of a scope closest to a message (FAISS, then hybrid re-ranking),
minus what the conversation's context already holds, fitted into a token budget.

Returns data (`Recalled`); `cogs.ai.prompting` renders it for the model. Search
results are checked against SQLite, so nothing forgotten is ever returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from utils.memory.chatlog import LoggedTurn, render_turn
from utils.memory.chunks import chunk_line
from utils.memory.indexes import ScopeIndexes
from utils.memory.lifecycle import Runtime
from utils.memory.records import Memory, Recalled, Scope
from utils.memory.scoring import Weights, keyword_match, keywords, relevant, score
from utils.memory.store import MemoryStore
from utils.text import estimate_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecallLimits:
    top_k: int
    context_tokens: int
    min_similarity: float
    candidates: int  # nearest neighbours re-ranked per query
    weights: Weights
    timeout: float  # a reply waits this long at most for its memories


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def context_lines(history: Iterable[LoggedTurn]) -> frozenset[str]:
    """What a conversation's context already says, in the forms memories take."""
    lines: set[str] = set()
    for turn in history:
        lines.add(_normal(chunk_line(turn)))
        lines.add(_normal(turn.content))
    return frozenset(lines)


def in_context(memory: Memory, context: frozenset[str]) -> bool:
    if memory.source == "conversation":
        return all(_normal(line) in context for line in memory.text.splitlines())
    return _normal(memory.text) in context


class Recall:
    """Finds what to remember for a message."""

    def __init__(
        self,
        runtime: Runtime,
        store: MemoryStore,
        indexes: ScopeIndexes,
        limits: RecallLimits,
        clock: Callable[[], float],
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.indexes = indexes
        self.limits = limits
        self.clock = clock

    async def for_reply(
        self,
        scope: Scope,
        query: str,
        history: Sequence[LoggedTurn],
        *,
        author_id: int,
        author_name: str,
    ) -> list[Recalled]:
        """`recall` for a reply to `query`: never raises and gives up after the recall
        timeout, so a reply goes ahead without memories rather than fail or hang."""
        try:
            return await asyncio.wait_for(
                self.recall(
                    scope, query, author_id=author_id, author_name=author_name, history=history
                ),
                self.limits.timeout,
            )
        except TimeoutError:
            log.warning("memory recall in %s timed out; answering without it", scope.key)
        except Exception:  # memory is an extra: any failure answers without it, logged
            log.exception("memory recall in %s failed; answering without it", scope.key)
        return []

    async def recall(
        self,
        scope: Scope,
        query: str,
        *,
        author_id: int | None = None,
        author_name: str | None = None,
        history: Sequence[LoggedTurn] = (),
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """The memories of `scope` most relevant to `query`, best first, that the
        `history` does not already hold, at most `limit` and `budget_tokens`.

        The query is embedded as its author's message ("alice: what's my cat called?"),
        the form memories are embedded in, so "my" finds what that person said. Finds
        nothing while the model is still loading after `model_wait`."""
        index = await self.indexes.get(scope)
        if not len(index) or not await self.runtime.model_loaded():
            return []  # nothing to find, or no model yet: don't wait for it
        spoken = render_turn("user", author_name, query) if author_name else query
        [vector] = await self.runtime.embed([spoken])
        return await self.search(
            scope,
            vector,
            query,
            author_id=author_id,
            context=context_lines(history),
            limit=limit,
            budget_tokens=budget_tokens,
        )

    async def search(
        self,
        scope: Scope,
        vector: np.ndarray,
        query: str,
        *,
        author_id: int | None = None,
        context: frozenset[str] = frozenset(),
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """`recall` for an embedded query."""
        index = await self.indexes.get(scope)
        ids, similarities = await self.indexes.run(index.search, vector, self.limits.candidates)
        memories = await self.store.get(scope, ids.tolist())
        gone = [int(i) for i in ids if int(i) not in memories]
        if gone:  # forgotten while the index was not loaded or mid-write: drop them now
            await self.indexes.run(index.remove, gone)
        ranked = self._rank(memories, ids, similarities, query, author_id, context)
        return _fit(
            ranked,
            self.limits.top_k if limit is None else limit,
            self.limits.context_tokens if budget_tokens is None else budget_tokens,
        )

    def _rank(
        self,
        memories: dict[int, Memory],
        ids: np.ndarray,
        similarities: np.ndarray,
        query: str,
        author_id: int | None,
        context: frozenset[str],
    ) -> list[Recalled]:
        now = self.clock()
        wanted = keywords(query)
        ranked = []
        for memory_id, similarity in zip(ids.tolist(), similarities.tolist(), strict=True):
            memory = memories.get(memory_id)
            if memory is None or in_context(memory, context):
                continue
            text = memory.describe()
            keyword = keyword_match(wanted, keywords(text))
            if not relevant(similarity, keyword, self.limits.min_similarity):
                continue
            age = now - memory.created_at
            total = score(
                similarity, keyword, age, memory.author_id == author_id, self.limits.weights
            )
            ranked.append(Recalled(memory.id, text, memory.source, age, total))
        ranked.sort(key=lambda item: item.score, reverse=True)
        return ranked


def _fit(ranked: list[Recalled], limit: int, budget: int) -> list[Recalled]:
    picked: list[Recalled] = []
    used = 0
    for item in ranked:
        if len(picked) >= limit:
            break
        cost = estimate_tokens(item.text) + 8  # + the bullet and age
        if used + cost <= budget:
            picked.append(item)
            used += cost
    return picked
