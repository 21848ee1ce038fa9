"""Recall: the memories of a scope most relevant to a message (FAISS and BM25 keyword
search, fused), minus what the conversation's context already holds, fitted into a
token budget by relevance.

Returns data (`Recalled`); `cogs.ai.prompting` renders it for the model. Search
results are checked against the database, so nothing forgotten is ever returned.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from utils.errors import BotError
from utils.memory.chatlog import LoggedTurn, by_bot
from utils.memory.chunks import line_of
from utils.memory.indexes import ScopeIndexes
from utils.memory.lifecycle import Runtime
from utils.memory.records import Memory, Readable, Recalled, Scope
from utils.memory.scoring import Weights, fused, keywords, query_terms, score, speaks, words
from utils.memory.store import MemoryStore
from utils.text import estimate_tokens, truncate

log = logging.getLogger(__name__)
Neighbours = tuple[np.ndarray, np.ndarray]  # FAISS: ids and similarities, best first


class MemoryLoading(BotError):
    """A recall asked for while the embedding model is still loading (after a start)."""

    def __init__(self) -> None:
        super().__init__("My memory is still loading after a restart; ask again in a minute.")


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


# A reply's context holds hundreds of turns and its search a hundred candidates, most
# of them seen by the replies before: their normal forms are kept, not made anew.
_FORMS = 8192


@functools.lru_cache(maxsize=_FORMS)
def _turn_forms(role: str, author_name: str, content: str) -> tuple[str, str]:
    """A turn as a memory holds it (its chunk line) and as a fact may quote it."""
    return _normal(line_of(role, author_name, content)), _normal(content)


@functools.lru_cache(maxsize=_FORMS)
def _normal_lines(text: str) -> tuple[str, ...]:
    return tuple(_normal(line) for line in text.splitlines())


def context_lines(history: Iterable[LoggedTurn]) -> frozenset[str]:
    """What a conversation's context already says, in the forms memories take."""
    forms = (_turn_forms(turn.role, turn.author_name, turn.content) for turn in history)
    return frozenset(itertools.chain.from_iterable(forms))


def in_context(memory: Memory, context: frozenset[str]) -> bool:
    if memory.source == "conversation":
        return context.issuperset(_normal_lines(memory.text))
    return _normal(memory.text) in context


def _may_read(readable: Readable | None, memory: Memory) -> bool:
    """Whether the asker may read where a memory was said or learnt."""
    return readable is None or memory.channel_id is None or readable(memory.channel_id)


def _new_and_readable(
    memories: dict[int, Memory], history: Sequence[LoggedTurn], readable: Readable | None
) -> Callable[[Recalled], bool]:
    """Whether a memory found may go in the prompt: said where the asker may read, and
    not already in the conversation's context. Asked only of those that would go in
    (a few of the candidates), so the context's forms are made only when needed."""
    context: frozenset[str] | None = None

    def keep(item: Recalled) -> bool:
        nonlocal context
        memory = memories[item.id]
        if context is None:
            context = context_lines(history)
        # The context first: it is the cheaper check, and turns most of them away.
        return not in_context(memory, context) and _may_read(readable, memory)

    return keep


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
        readable: Readable | None = None,
    ) -> list[Recalled]:
        """`recall` for a reply to `query`: never raises and gives up after the recall
        timeout, so a reply goes ahead without memories rather than fail or hang."""
        try:
            async with asyncio.timeout(self.limits.timeout):
                return await self.recall(
                    scope,
                    query,
                    author_id=author_id,
                    author_name=author_name,
                    history=history,
                    readable=readable,
                )
        except MemoryLoading:
            pass  # `Runtime.model_loaded` has said so in the log, once
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
        readable: Readable | None = None,
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """The memories of `scope` most relevant to `query`, best first, that the
        `history` does not already hold, from channels the asker may read (`readable`;
        None: any), at most `limit` and `budget_tokens`.

        The query is embedded as its author's line of a chunk ("alice: what's my cat
        called?"), the form memories are embedded in, so "my" finds what that person
        said, and indexing the exchange reuses the vector (`Runtime.embed`). Finds
        nothing in a scope of another process (its messages never come here; no index
        is built for it); raises MemoryLoading while the model is still loading after
        `model_wait` (rather than say nothing is remembered)."""
        if not self.indexes.owns(scope):
            return []
        index = await self.indexes.get(scope)
        if not len(index):
            return []
        if not await self.runtime.model_loaded():
            raise MemoryLoading  # don't wait for it
        spoken = line_of("user", author_name, query) if author_name else query
        nearest = functools.partial(index.search, k=self.limits.candidates)
        return await self._found(
            scope,
            query,
            self.runtime.embed_then(spoken, nearest),
            author_id=author_id,
            history=history,
            readable=readable,
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
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """`recall` for a query embedded already (benchmarks embed their questions once)."""
        index = await self.indexes.get(scope)

        async def nearest() -> tuple[np.ndarray, Neighbours]:
            return vector, await self.indexes.run(index.search, vector, self.limits.candidates)

        return await self._found(
            scope, query, nearest(), author_id=author_id, limit=limit, budget_tokens=budget_tokens
        )

    async def _found(
        self,
        scope: Scope,
        query: str,
        nearest: Awaitable[tuple[np.ndarray, Neighbours]],
        *,
        author_id: int | None = None,
        history: Sequence[LoggedTurn] = (),
        readable: Readable | None = None,
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """The nearest memories by meaning (FAISS: `nearest` gives the query's vector and
        its neighbours) and the best keyword matches (BM25, searched meanwhile), fused,
        re-ranked and fitted into the budget."""
        searched = query_terms(query)
        (vector, (dense_ids, similarities)), keyword_found = await asyncio.gather(
            nearest,
            self.store.search_terms(
                scope, searched, self.limits.candidates, names_weight=self.limits.weights.names
            ),
        )
        dense = dict(zip(dense_ids.tolist(), similarities.tolist(), strict=True))
        # Found by keywords only: their vectors come with them, to tell how close in
        # meaning they are too.
        unseen = {memory_id for memory_id, _ in keyword_found if memory_id not in dense}
        memories, vectors = await self.store.candidates(
            scope, [*dense, *unseen], self.indexes.model, unseen
        )
        gone = [i for i in dense if i not in memories]
        if gone:  # forgotten while the index was not loaded or mid-write: drop them now
            index = await self.indexes.get(scope)
            await self.indexes.run(index.remove, gone)
        if vectors:
            found = np.stack(list(vectors.values()))
            dense.update(zip(vectors, (found @ vector).tolist(), strict=True))
        ranked = self._rank(
            memories,
            named=frozenset(words(query)),
            keyword=dict(keyword_found),
            similarity=dense,
            author_id=author_id,
        )
        return fit(
            ranked,
            frozenset(searched),
            self.limits.top_k if limit is None else limit,
            self.limits.context_tokens if budget_tokens is None else budget_tokens,
            keep=_new_and_readable(memories, history, readable),
        )

    def _rank(
        self,
        memories: dict[int, Memory],
        *,
        named: frozenset[str],
        keyword: dict[int, float],
        similarity: dict[int, float],
        author_id: int | None,
    ) -> list[Recalled]:
        now = self.clock()
        weights = self.limits.weights
        floor = self.limits.min_similarity
        best = max(keyword.values(), default=0.0)
        # A keyword score of half the best one or more is among the best matches.
        among_best = best / 2 if best > 0 else math.inf
        ranked = []
        for memory_id, close in similarity.items():
            memory = memories.get(memory_id)
            matched = keyword.get(memory_id, 0.0)
            if memory is None or (close < floor and matched < among_best):
                continue  # gone, or neither close in meaning nor among the best keyword matches
            age = now - memory.created_at
            text = memory.describe()
            total = score(
                fused(close, matched, best, weights),
                fact=memory.source != "conversation",
                age_seconds=age,
                same_author=memory.author_id == author_id,
                named=speaks(named, text),
                weights=weights,
            )
            ranked.append(Recalled(memory.id, text, memory.source, age, total, memory.author_id))
        ranked.sort(key=lambda item: (item.score, item.id), reverse=True)
        return ranked


def cost(text: str) -> int:
    """Tokens a recalled memory takes in the prompt, with its bullet and age."""
    return estimate_tokens(text) + 8


def excerpt(text: str, wanted: frozenset[str], max_tokens: int) -> str:
    """A long conversation memory cut to its lines that share the most words with the
    question (kept in their order), within `max_tokens`; among lines that match alike,
    people's before the bot's, then the first ones."""
    lines = text.splitlines()

    def order(n: int) -> tuple[int, bool, int]:
        return (-len(wanted & keywords(lines[n])), by_bot(lines[n]), n)

    by_match = sorted(range(len(lines)), key=order)
    kept: list[int] = []
    for n in by_match:
        if cost("\n".join(lines[i] for i in sorted([*kept, n]))) <= max_tokens:
            kept.append(n)
    if not kept:
        return truncate(lines[by_match[0]], max(4 * (max_tokens - 8), 1))
    return "\n".join(lines[n] for n in sorted(kept))


def fit(
    ranked: list[Recalled],
    wanted: frozenset[str],
    limit: int,
    budget: int,
    keep: Callable[[Recalled], bool] = lambda _: True,
) -> list[Recalled]:
    """The best memories that fit the token budget, at most `limit`, in order of
    relevance; a long conversation memory gives way to its matching lines rather than
    crowd out the next memories (each takes at most a third of the budget). Only those
    that would go in are asked whether to `keep` them."""
    picked: list[Recalled] = []
    used = 0
    share = max(budget // 3, 1)
    for item in ranked:
        if len(picked) >= limit or used + cost(" ") > budget:
            break  # full: no memory costs less than a one-character one
        tokens = cost(item.text)
        if item.source == "conversation" and tokens > share:
            item = item._replace(text=excerpt(item.text, wanted, share))
            tokens = cost(item.text)
        if used + tokens <= budget and keep(item):
            picked.append(item)
            used += tokens
    return picked
