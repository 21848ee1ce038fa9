"""Conversation chunks: one person's consecutive exchanges with the bot, as one memory.

A chunk grows with each exchange until it holds `max_turns` messages or `max_chars`
characters, someone else speaks, or the talk paused for `gap` seconds; the next
exchange then starts a new chunk. A growing chunk gets a new vector at each change
(from its people's lines, `records.embedded`), so it is searchable from its first
exchange. Pure functions: the rules are testable alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from utils.memory.chatlog import LoggedTurn, render_turn
from utils.memory.records import Scope
from utils.text import truncate

TURN_CHARS = 400  # longest message kept in a chunk; the model reads ~256 tokens anyway


@dataclass(frozen=True)
class ChunkLimits:
    max_turns: int = 6
    max_chars: int = 1200
    gap: float = 3600.0  # seconds of silence that close a chunk


Held = tuple[int, int | None]
"""A chat turn a memory holds: its id in the log and its Discord message (a reply's
latest; None for `/chat`, whose question has none)."""


@dataclass(frozen=True)
class Exchange:
    """Messages stored together by the AI chat (a user message and the reply)."""

    scope: Scope
    channel_id: int
    author_id: int
    author_name: str
    lines: tuple[str, ...]
    at: float
    held: tuple[Held, ...]  # its turns in the chat log (none if not stored there)
    parts: tuple[int, ...] = ()  # the earlier Discord messages of its reply (split)

    @property
    def turn_ids(self) -> tuple[int, ...]:
        return tuple(turn_id for turn_id, _ in self.held)

    @classmethod
    def of(
        cls,
        scope: Scope,
        channel_id: int,
        turns: Sequence[LoggedTurn],
        at: float,
        parts: Sequence[int] = (),
    ) -> Exchange:
        human = next((t for t in turns if t.role == "user"), turns[0])
        lines = tuple(chunk_line(turn) for turn in turns)
        stored = [turn for turn in turns if turn.id]
        return cls(
            scope,
            channel_id,
            human.author_id,
            human.author_name,
            lines,
            at,
            tuple((turn.id, turn.message_id) for turn in stored),
            tuple(parts),
        )


@dataclass(frozen=True)
class Chunk:
    """A conversation memory as it is or will be stored; `id` None means not yet."""

    id: int | None
    scope: Scope
    channel_id: int
    author_id: int
    author_name: str
    text: str
    turns: int
    created_at: float  # the latest message
    stored_text: str | None = None  # the text stored when read, to spot a concurrent change
    held: tuple[Held, ...] = ()  # the turns of the chat log it takes in now
    parts: tuple[int, ...] = ()  # the earlier Discord messages of split replies it takes in

    @property
    def turn_ids(self) -> tuple[int, ...]:
        return tuple(turn_id for turn_id, _ in self.held)

    @property
    def turn_id(self) -> int | None:
        """The first of them (None: none)."""
        return min(self.turn_ids, default=None)

    @property
    def changed(self) -> bool:
        return self.id is None or self.text != self.stored_text


def chunk_line(turn: LoggedTurn) -> str:
    """One message as a line of a chunk (and of the history it is compared with)."""
    return line_of(turn.role, turn.author_name, turn.content)


def line_of(role: str, author_name: str, content: str) -> str:
    """A message as a chunk holds it: on one line, at most TURN_CHARS long."""
    return render_turn(role, author_name, truncate(" ".join(content.split()), TURN_CHARS))


def continues(chunk: Chunk, exchange: Exchange, limits: ChunkLimits) -> bool:
    added = sum(len(line) + 1 for line in exchange.lines)
    return (
        chunk.scope == exchange.scope
        and chunk.author_id == exchange.author_id
        and chunk.turns + len(exchange.lines) <= limits.max_turns
        and len(chunk.text) + added <= limits.max_chars
        and exchange.at - chunk.created_at <= limits.gap
    )


def plan(
    open_chunk: Chunk | None, exchanges: Iterable[Exchange], limits: ChunkLimits
) -> list[Chunk]:
    """The chunks to write for a channel's new exchanges, in order: the open chunk
    grown (if they continue it), then new ones."""
    chunks = [open_chunk] if open_chunk is not None else []
    for exchange in exchanges:
        if chunks and continues(chunks[-1], exchange, limits):
            last = chunks[-1]
            chunks[-1] = replace(
                last,
                text="\n".join((last.text, *exchange.lines)),
                turns=last.turns + len(exchange.lines),
                created_at=exchange.at,
                held=last.held + exchange.held,
                parts=last.parts + exchange.parts,
            )
        else:
            chunks.append(
                Chunk(
                    None,
                    exchange.scope,
                    exchange.channel_id,
                    exchange.author_id,
                    exchange.author_name,
                    "\n".join(exchange.lines),
                    len(exchange.lines),
                    exchange.at,
                    held=exchange.held,
                    parts=exchange.parts,
                )
            )
    return [chunk for chunk in chunks if chunk.changed]
