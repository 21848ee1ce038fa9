"""The values memory code passes around: scopes, stored and recalled memories."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from utils.memory.chatlog import by_bot

Source = Literal["conversation", "consolidation", "user"]
ScopeKind = Literal["guild", "dm"]
# Whether this process runs a guild's shard (None: DMs, shard 0's); `bot.Bot.owns`.
Owns = Callable[[int | None], bool]
# Whether the person a recall is for may read a channel's messages (`utils.checks.readable`):
# a memory of a channel they can't read is never recalled for them.
Readable = Callable[[int], bool]

_SCOPE_KEY = re.compile(r"^(guild|dm):(\d+)$")


@dataclass(frozen=True, order=True)
class Scope:
    """Where memories live and may be used: one guild, or one user's DMs with the bot.

    Nothing remembered in one scope is ever searched or shown in another.
    """

    kind: ScopeKind
    id: int

    @classmethod
    def of(cls, guild_id: int | None, user_id: int) -> Scope:
        """The scope of a message: its guild, or the DM scope of the user."""
        return cls("guild", guild_id) if guild_id is not None else cls("dm", user_id)

    @classmethod
    def parse(cls, key: str) -> Scope:
        match = _SCOPE_KEY.match(key)
        if match is None:
            raise ValueError(f"not a memory scope: {key!r}")
        return cls(match[1], int(match[2]))  # type: ignore[arg-type]

    @property
    def guild_id(self) -> int | None:
        """The guild of a guild scope; None for a DM scope (DMs belong to shard 0)."""
        return self.id if self.kind == "guild" else None

    @property
    def key(self) -> str:
        """How the scope is stored in the database: `guild:<id>` or `dm:<user id>`."""
        return f"{self.kind}:{self.id}"

    @property
    def filename(self) -> str:
        return f"{self.kind}-{self.id}.faiss"


def describe(source: Source, author_name: str, text: str) -> str:
    """A memory as the model reads it (so "I'm allergic to peanuts" is found by "what is
    Hana allergic to?"); chunks already name speakers."""
    return text if source == "conversation" else f"{author_name}: {text}"


def embedded(source: Source, author_name: str, text: str) -> list[str]:
    """The texts whose vectors, added up, make a memory's vector: the memory as
    described, but for a conversation memory each line people said, without the bot's.
    People's words are what later questions ask about (recall is better,
    docs/BENCHMARKS.md), the bot's still count by keyword search, and each line is
    embedded as its question was at recall, so those vectors serve again."""
    if source != "conversation":
        return [describe(source, author_name, text)]
    return [line for line in text.splitlines() if not by_bot(line)] or [text]


class Memory(NamedTuple):
    """One stored memory. (This and `Recalled` are named tuples: a recall makes a
    hundred or more, and a named tuple is made five times as fast as a frozen
    dataclass.)"""

    id: int
    scope: Scope
    author_id: int
    author_name: str
    source: Source
    text: str
    created_at: float
    channel_id: int | None  # where it was said or learnt; None: told the bot directly

    def describe(self) -> str:
        return describe(self.source, self.author_name, self.text)

    def embedded(self) -> list[str]:
        return embedded(self.source, self.author_name, self.text)


class Recalled(NamedTuple):
    """A memory found for a query: what it says (as the model reads it), where it came
    from, how old it is (seconds), how well it matched, and whose it is (the person a fact
    is about, the person of a conversation memory's exchanges; None: not known)."""

    id: int
    text: str
    source: Source
    age: float
    score: float
    author_id: int | None = None


def age_text(seconds: float) -> str:
    """How long ago, as people say it: today, yesterday, 3 days ago, 2 months ago."""
    days = int(seconds // 86_400)
    if days < 1:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago" if days < 60 else f"{days // 30} months ago"
