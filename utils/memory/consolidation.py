"""Consolidation: every few minutes, ask the model which lasting facts about people the
AI chat messages not read yet hold, and store the new ones.

Each process reads the channels of its own guilds (and DMs on shard 0's), so no
channel is read twice and the facts go to indexes this process keeps.

The conversation comes from the chat store's read API (`ChatLog`), one numbered line
per message; the model answers with structured output (JSON of `SCHEMA`): each fact
with the person it is about and the line where they say it. A fact is kept only for
the person who said it of themselves: the line must be theirs (what Bob says of Alice
is neither Alice's fact nor Bob's), and theirs alone (not the bot's, nor a name two
speakers share). The newest word on something wins: a fact that repeats a known one
is dropped, and one close to a fact of the same person but worded otherwise ("is 31"
after "is 30") replaces it.
A channel the model fails on (an error, an answer cut short or refused) is tried again
next pass, and after _FAILURES passes in a row its unread messages are given up, so it
never holds up the other channels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from google.genai import types

from utils.gemini_replies import AIError, AIUnavailableError
from utils.memory.chatlog import BOT_LABEL, ChannelHead, ChatLog, LoggedTurn
from utils.memory.chunks import chunk_line
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.memory.indexes import ScopeIndexes
from utils.memory.lifecycle import Runtime
from utils.memory.records import Owns, Scope, describe
from utils.memory.store import MemoryStore, NewMemory
from utils.memory.writer import MemoryWriter
from utils.text import name_key

if TYPE_CHECKING:
    from utils.gemini import GeminiProvider
    from utils.usage import UsageStore

log = logging.getLogger(__name__)

MAX_FACT_CHARS = 300
_CHANNELS = 50  # per run
_TURNS = 60  # newest unread messages per channel
_HEADS_PAGE = 500  # channels read from the log at a time
_FAILURES = 3  # passes in a row the model fails on a channel before its messages are skipped

INSTRUCTION = (
    "You keep the long-term memory of a Discord chat assistant. Read the conversation and "
    "list lasting facts about the people in it (never about the assistant, whose messages "
    "are labelled 'assistant'): names they go by, pets, family, work, places, tastes, plans, "
    "and anything they ask to be remembered. Keep only what people say about themselves in "
    "their own messages: what someone says about another person is no fact about either. "
    "Skip greetings, passing moods, questions and one-off requests. Write each fact as one "
    "short third-person sentence that names the person, in the conversation's language, "
    "with the person's name as written in `user` and in `line` the number of the line in "
    "which that person says it. Answer with an empty list when there is nothing worth keeping."
)

SCHEMA: types.SchemaDict = {
    "type": types.Type.ARRAY,
    "items": {
        "type": types.Type.OBJECT,
        "properties": {
            "line": {"type": types.Type.INTEGER},
            "user": {"type": types.Type.STRING},
            "fact": {"type": types.Type.STRING},
        },
        "required": ["line", "user", "fact"],
    },
}


@dataclass(frozen=True)
class Fact:
    author_id: int
    author_name: str
    text: str
    line: int  # where its author says it: the position of the turn, from 1


@dataclass(frozen=True)
class _Pending:
    """A channel with messages consolidation has not read yet."""

    channel_id: int
    guild_id: int | None
    upto_id: int


def request(turns: Sequence[LoggedTurn]) -> list[types.ContentDict]:
    lines = (f"[{number}] {chunk_line(turn)}" for number, turn in enumerate(turns, start=1))
    text = "Conversation:\n" + "\n".join(lines)
    return [{"role": "user", "parts": [{"text": text}]}]


def speakers_of(turns: Sequence[LoggedTurn]) -> list[tuple[int, str] | None]:
    """Who said each of `turns`, as (id, name): None for the bot's, and for a name two
    speakers share or the bot's label (the model cannot tell whose a fact about it is)."""
    ids: dict[str, int] = {}
    shared = {BOT_LABEL}
    for turn in turns:
        if turn.role == "user":
            key = name_key(turn.author_name)
            if ids.setdefault(key, turn.author_id) != turn.author_id:
                shared.add(key)
    return [
        (turn.author_id, turn.author_name)
        if turn.role == "user" and name_key(turn.author_name) not in shared
        else None
        for turn in turns
    ]


def parse(text: str, speakers: Sequence[tuple[int, str] | None]) -> list[Fact]:
    """Facts from the model's JSON answer; `speakers` says who said each line (`line`
    counts from 1). A fact is kept only if the line it cites is by the person it is
    about: not what someone said of another, nor anything of the assistant or of a name
    two people share."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        log.warning("consolidation: the model's answer was not JSON; nothing kept")
        return []
    facts = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        fact = item.get("fact")
        if not isinstance(fact, str) or not 3 <= len(fact.strip()) <= MAX_FACT_CHARS:
            continue
        name, line = item.get("user"), item.get("line")
        if not isinstance(name, str) or type(line) is not int or not 1 <= line <= len(speakers):
            continue
        person = speakers[line - 1]
        if person is not None and name_key(name) == name_key(person[1]):
            facts.append(Fact(person[0], person[1], " ".join(fact.split()), line))
    return facts


class Consolidator:
    """Reads unread chat, asks the model for facts, stores the new ones."""

    def __init__(
        self,
        runtime: Runtime,
        store: MemoryStore,
        marks: ConsolidationMarks,
        indexes: ScopeIndexes,
        writer: MemoryWriter,
        *,
        log_reader: ChatLog,
        provider: GeminiProvider,
        usage: UsageStore | None,
        dedupe_similarity: float,
        owns: Owns,
        clock: Callable[[], float],
    ) -> None:
        self.owns = owns
        self.runtime = runtime
        self.store = store
        self.marks = marks
        self.indexes = indexes
        self.writer = writer
        self.chat_log = log_reader
        self.provider = provider
        self.usage = usage
        self.dedupe_similarity = dedupe_similarity
        self.clock = clock
        self._failures: dict[int, int] = {}  # channel: passes in a row the model failed on it

    async def once(self) -> int:
        """Extract facts from AI chat messages not read yet; returns how many were new.
        Stops early (raising) only while the AI is unavailable."""
        stored = 0
        await self._let_go_lost_turns()
        channels = await self._pending()
        # Failures count passes in a row: a channel with nothing left to read (its
        # history cleared) starts again from none, and the count is kept for no other.
        unread = {pending.channel_id for pending in channels}
        self._failures = {c: n for c, n in self._failures.items() if c in unread}
        for pending in channels:
            read = self.writer.unsaid()  # a message deleted or edited after gives no fact
            turns = await self.chat_log.newest_turns(pending.channel_id, pending.upto_id, _TURNS)
            if not turns:
                continue  # deleted meanwhile
            readable = await self._remembered(pending, turns)
            if any(turn.role == "user" for turn in readable):
                try:
                    stored += await self._consolidate(
                        pending.guild_id, pending.channel_id, readable, turns[-1].id, read
                    )
                except AIUnavailableError:
                    raise  # the AI is down or busy (rate limited): the next pass tries again
                except AIError as error:
                    if not self._given_up(pending.channel_id, error):
                        continue  # tried again next pass
            self._failures.pop(pending.channel_id, None)
            await self.writer.unbroken(
                self.marks.mark_consolidated(pending.guild_id, pending.channel_id, turns[-1].id)
            )
        if stored:
            log.info("consolidation stored %d new facts", stored)
        return stored

    async def _let_go_lost_turns(self) -> None:
        """Let go of the forgotten turns of this process's channels that the log lost."""
        for channel_id, guild_id in await self.marks.noted_channels():
            if self.owns(guild_id):
                newest = await self.chat_log.newest_turns(channel_id, 0, 1)
                await self.marks.let_go_lost_turns(channel_id, newest[-1].id if newest else 0)

    def _given_up(self, channel_id: int, error: AIError) -> bool:
        """The model failed on a channel: whether to give its unread messages up (it
        failed _FAILURES passes in a row, a conversation it refuses, say)."""
        failures = self._failures[channel_id] = self._failures.get(channel_id, 0) + 1
        if failures < _FAILURES:
            log.warning("consolidation: channel %s failed (%s); trying again", channel_id, error)
            return False
        log.warning(
            "consolidation: channel %s failed %d passes in a row (%s); its unread "
            "messages are skipped",
            channel_id,
            failures,
            error,
        )
        return True

    async def _pending(self) -> list[_Pending]:
        """Up to _CHANNELS channels of this process's guilds with unread messages,
        least recently active first."""
        pending: list[_Pending] = []
        after = 0
        while len(pending) < _CHANNELS:
            heads: Sequence[ChannelHead] = await self.chat_log.channel_heads(after, _HEADS_PAGE)
            if not heads:
                break
            after = heads[-1].last_id
            ours = [head for head in heads if self.owns(head.guild_id)]
            read = await self.marks.consolidated([head.channel_id for head in ours])
            pending += [
                _Pending(head.channel_id, head.guild_id, read.get(head.channel_id, 0))
                for head in ours
                if head.last_id > read.get(head.channel_id, 0)
            ]
        return pending[:_CHANNELS]

    async def _remembered(self, pending: _Pending, turns: Sequence[LoggedTurn]) -> list[LoggedTurn]:
        """The turns without those their authors told the bot to forget (and the bot's
        replies to them), and those of single memories forgotten."""
        forgotten: dict[Scope, dict[int, int]] = {}
        single = await self.marks.forgotten_turns(pending.channel_id, pending.upto_id)
        kept: list[LoggedTurn] = []
        dropping = False
        for turn in turns:
            if turn.role == "user":
                scope = Scope.of(pending.guild_id, turn.author_id)
                if scope not in forgotten:
                    forgotten[scope] = await self.marks.forgotten(scope)
                dropping = turn.id <= forgotten[scope].get(turn.author_id, 0)
            if not dropping and turn.id not in single:
                kept.append(turn)
        return kept

    async def _consolidate(
        self,
        guild_id: int | None,
        channel_id: int,
        turns: Sequence[LoggedTurn],
        upto_id: int,
        read: int,
    ) -> int:
        # The server's model (`/ai model`) and the channel's safety level (`/ai safety`), as
        # its replies and summaries use: a stricter filter would refuse what they may say.
        # A thread's own level only: the log does not know its channel, whose level replies
        # in a thread fall back to; a thread with none of its own gets Google's default.
        model = await self.chat_log.guild_model(guild_id)
        safety = await self.chat_log.channel_safety(channel_id)
        reply = await self.provider.generate(
            request(turns), system=INSTRUCTION, schema=SCHEMA, model=model, safety=safety
        )
        if self.usage is not None:
            await self.writer.unbroken(
                self.usage.record(guild_id, reply.usage.prompt_tokens, reply.usage.output_tokens)
            )
        if stopped := reply.stopped():
            raise stopped  # cut short (its JSON torn) or refused: a failure, not "no facts"
        facts = parse(reply.text, speakers_of(turns))
        if not facts:
            return 0
        scope = Scope.of(guild_id, facts[0].author_id)
        vectors = await self.runtime.embed(
            [describe("consolidation", fact.author_name, fact.text) for fact in facts]
        )
        keep = await self._novel(scope, facts, vectors)
        now = self.clock()
        new = []
        for i, replaced in keep.items():
            fact, said = facts[i], turns[facts[i].line - 1]
            new.append(
                NewMemory(
                    scope,
                    fact.author_id,
                    fact.author_name,
                    "consolidation",
                    fact.text,
                    now,
                    channel_id,
                    upto_id,
                    replaces=tuple(sorted(replaced)),
                    held=((said.id, said.message_id),),  # its message deleted, it goes too
                )
            )
        if not new:
            return 0
        ids = await self.writer.add_facts(new, vectors[list(keep)], read)
        return sum(memory_id is not None for memory_id in ids)

    async def _novel(
        self, scope: Scope, facts: list[Fact], vectors: np.ndarray
    ) -> dict[int, set[int]]:
        """The facts to store, by position, each with the ids of the stored facts it
        replaces. A fact close (`dedupe_similarity`) to another of the same person is
        the newer word on it: if it repeats it (the same words, case and spacing aside)
        it is dropped; if not, it replaces the earlier one of its batch and the
        person's stored consolidation facts (what people told with /memory add stays)."""
        threshold = self.dedupe_similarity
        index = await self.indexes.get(scope)
        keep: dict[int, set[int]] = {}
        for i, (fact, vector) in enumerate(zip(facts, vectors, strict=True)):
            earlier = [
                j
                for j in keep
                if facts[j].author_id == fact.author_id and float(vector @ vectors[j]) >= threshold
            ]
            if any(_same(facts[j].text, fact.text) for j in earlier):
                continue
            ids, similarities = await self.indexes.run(index.search, vector, 20)
            close = [int(m) for m, s in zip(ids, similarities, strict=True) if s >= threshold]
            stored = [
                memory
                for memory in (await self.store.get(scope, close) if close else {}).values()
                if memory.author_id == fact.author_id and memory.source != "conversation"
            ]
            if any(_same(memory.text, fact.text) for memory in stored):
                continue
            replaced = {memory.id for memory in stored if memory.source == "consolidation"}
            for j in earlier:
                replaced |= keep.pop(j)
            keep[i] = replaced
        return keep


def _same(text: str, other: str) -> bool:
    """Whether two facts say the same words (case, spacing and a final full stop aside)."""

    def words(fact: str) -> str:
        return " ".join(fact.casefold().split()).removesuffix(".")

    return words(text) == words(other)
