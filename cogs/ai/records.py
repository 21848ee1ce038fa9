"""The chat log's plain records, no I/O: turns, channel preferences, what a reply reads,
and `Tail`, a channel's newest turns as `cogs.ai.store.ChatStore` keeps them in memory."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Literal

Role = Literal["user", "model"]

WRITING = "interrupted"  # the incomplete mark of a reply while it is being written


@dataclass(frozen=True)
class Turn:
    """One message of a conversation; `id` 0 until it is stored."""

    role: Role
    author_id: int
    author_name: str
    content: str
    message_id: int | None = None  # the Discord message (of a reply: its latest one)
    incomplete: str | None = None  # why a reply stopped early (None: a whole message)
    id: int = 0
    tokens: int = 0
    created_at: float = 0.0


TURN_COLUMNS = ", ".join(f.name for f in fields(Turn))  # its columns in ai_messages


@dataclass(frozen=True)
class ChannelHead:
    """A channel of the conversation log and its newest turn."""

    channel_id: int
    guild_id: int | None
    last_id: int


@dataclass(frozen=True)
class Unfinished:
    """A reply still marked as being written, and where its latest message is."""

    turn_id: int
    channel_id: int
    message_id: int | None
    guild_id: int | None  # None in a DM; whose shard finalises it


@dataclass(frozen=True)
class ChannelPrefs:
    persona: str | None = None
    system_prompt: str | None = None
    autorespond: bool = False
    summary: str | None = None
    summary_upto: int = 0
    safety: str | None = None
    context_from: int = 0  # the conversation started afresh after this turn (0: never)

    @property
    def read_after(self) -> int:
        """The newest turn replies do not read: summarised, or before a fresh start."""
        return max(self.summary_upto, self.context_from)

    def within(self, parent: ChannelPrefs) -> ChannelPrefs:
        """A thread's preferences: the persona, prompt and safety level it leaves unset are
        its channel's (`parent`), so a thread keeps the rules of the channel it is in."""
        return replace(
            self,
            persona=self.persona or parent.persona,
            system_prompt=self.system_prompt or parent.system_prompt,
            safety=self.safety or parent.safety,
        )


@dataclass(frozen=True)
class GuildPrefs:
    model: str | None = None  # None: the default model
    tools: frozenset[str] | None = None  # the tool families turned on (None: the defaults)


@dataclass(frozen=True)
class ReplyContext:
    """What a reply in a channel needs, read at once."""

    prefs: ChannelPrefs  # persona, custom prompt, summary, safety
    turns: list[Turn]  # the newest unsummarised turns that fit the budget, oldest first
    overflow: bool  # older unsummarised turns were left out (time to summarise)
    model: str | None  # the guild's model (None: the default)


@dataclass(frozen=True)
class Place:
    """Where a conversation happens."""

    guild_id: int | None
    channel_id: int
    description: str  # e.g. "the #general channel of the server Foo"
    parent_id: int | None = None  # of a thread (or forum post): the channel it is in


@dataclass
class Tail:
    """A channel's newest turns, oldest first: as many as fit the largest context."""

    turns: deque[Turn] = field(default_factory=deque)
    tokens: int = 0
    older_id: int = 0  # the newest stored turn left out of `turns` (0: none)

    def append(self, turn: Turn, max_tokens: int) -> None:
        if self.turns and turn.id <= self.turns[-1].id:
            return  # already loaded from the database
        self.turns.append(turn)
        self.tokens += turn.tokens
        while self.tokens > max_tokens:
            self.older_id = self._pop().id

    def replace(self, turn: Turn, max_tokens: int) -> None:
        """Put a rewritten turn in place of the one with its id, if it is here."""
        for index in range(len(self.turns) - 1, -1, -1):
            if self.turns[index].id == turn.id:
                self.tokens += turn.tokens - self.turns[index].tokens
                self.turns[index] = turn
                break
        while self.tokens > max_tokens:
            self.older_id = self._pop().id

    def drop_upto(self, turn_id: int) -> None:
        while self.turns and self.turns[0].id <= turn_id:
            self._pop()
        if self.older_id <= turn_id:
            self.older_id = 0

    def _pop(self) -> Turn:
        turn = self.turns.popleft()
        self.tokens -= turn.tokens
        return turn
