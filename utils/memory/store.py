"""Memories in the database: the source of truth every FAISS index is built from.

Writes and reads the memories, with which chat turns each conversation chunk holds and
each fact was learnt from (`memory_turns`, and the earlier messages of split replies in
`memory_reply_parts`), and each memory's keyword rows (`keywords`, one class per
backend), written in the memory's transaction; a write leaves out what was forgotten or
purged meanwhile, lest work under way write it back (`tombstones`). Deleting memories
is `deletions`; how far consolidation has read each channel is `consolidation_marks`;
reading and rewriting the vectors (float32 blobs with the name of the model that made
them) is `vectors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from utils.db import Connection, Database, Row, in_batches
from utils.memory.chunks import Chunk, Held
from utils.memory.keywords import Fields, KeywordRow, keyword_index
from utils.memory.records import Memory, Scope, Source, describe
from utils.memory.scoring import indexed_terms
from utils.memory.tombstones import Tombstones
from utils.memory.vectors import MemoryVectors, blob

_COLUMNS = "id, scope, author_id, author_name, source, text, created_at, channel_id"
_ADD_TURNS = (
    "INSERT INTO memory_turns (memory_id, turn_id, message_id) VALUES (?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_ADD_PARTS = (
    "INSERT INTO memory_reply_parts (memory_id, message_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class NewMemory:
    scope: Scope
    author_id: int
    author_name: str
    source: Source
    text: str
    created_at: float
    channel_id: int | None = None  # the channel a fact was learnt in; None: told directly
    turn_id: int | None = None  # the newest turn of the chat log it was learnt from
    replaces: tuple[int, ...] = ()  # its author's consolidation facts it supersedes
    held: tuple[Held, ...] = ()  # the chat turn it was learnt from (`memory_turns`)


def _memory(row: Row, scope: Scope | None = None) -> Memory:
    """A memory from a row that starts with `_COLUMNS` (its scope parsed unless given)."""
    scope = scope or Scope.parse(row[1])
    return Memory(row[0], scope, row[2], row[3], row[4], row[5], row[6], row[7])


def _turn_rows(memory_id: int, held: Sequence[Held]) -> list[tuple[int, int, int | None]]:
    return [(memory_id, turn_id, message_id) for turn_id, message_id in held]


async def _terms_of(texts: Sequence[str]) -> list[Fields]:
    """The keyword rows of texts, made in a thread (stemming a batch takes a while)."""
    return await asyncio.to_thread(lambda: [indexed_terms(text) for text in texts])


class MemoryStore:
    """Reads and writes the memory tables; knows nothing about FAISS or Discord."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.keywords = keyword_index(db)
        self.vectors = MemoryVectors(db)

    # Writing

    async def insert(
        self, memories: Sequence[NewMemory], model: str, vectors: np.ndarray
    ) -> list[int | None]:
        """Insert memories, each deleting the facts it `replaces`; one learnt from chat
        its author has since told the bot to forget (all of it, or the memory holding
        its turn), or from a place purged since, is not (its id comes back None)."""
        fields = await _terms_of([describe(m.source, m.author_name, m.text) for m in memories])

        async def write(conn: Connection) -> tuple[list[int | None], list[KeywordRow]]:
            ids: list[int | None] = []
            keyword_rows: list[KeywordRow] = []
            turn_rows: list[tuple[int, int, int | None]] = []
            gone = await Tombstones.read(
                conn,
                {(m.scope, m.channel_id) for m in memories},
                {turn_id for m in memories for turn_id, _ in m.held},
            )
            for memory, vector, terms in zip(memories, vectors, fields, strict=True):
                if gone.cover(
                    memory.scope, memory.author_id, memory.channel_id, memory.turn_id, memory.held
                ):
                    ids.append(None)
                    continue
                memory_id = await conn.fetchval(
                    "INSERT INTO memories (scope, author_id, author_name, source, text, "
                    "channel_id, created_at, model, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        memory.scope.key,
                        memory.author_id,
                        memory.author_name,
                        memory.source,
                        memory.text,
                        memory.channel_id,
                        memory.created_at,
                        model,
                        blob(vector),
                    ),
                )
                ids.append(memory_id)
                keyword_rows.append((memory_id, memory.scope, terms))
                turn_rows += _turn_rows(memory_id, memory.held)
                if memory.replaces:
                    marks = ",".join("?" * len(memory.replaces))
                    await conn.execute(
                        f"DELETE FROM memories WHERE id IN ({marks}) AND scope = ? "
                        "AND author_id = ? AND source = 'consolidation'",
                        (*memory.replaces, memory.scope.key, memory.author_id),
                    )
            await self.keywords.write(conn, keyword_rows)
            await conn.executemany(_ADD_TURNS, turn_rows)
            return ids, keyword_rows

        ids, keyword_rows = await self.db.in_transaction(write)
        self.keywords.written(keyword_rows)
        return ids

    async def write_chunks(
        self, chunks: Sequence[Chunk], model: str, vectors: np.ndarray
    ) -> list[int | None]:
        """Insert new chunks and update grown ones, atomically. An update whose row was
        changed or deleted meanwhile (forgotten, purged), or a new chunk of messages its
        author has since told the bot to forget or of a place purged since, is dropped
        and its id comes back None, so forgotten words are never written back; so do
        the chunks after a dropped update in its channel (for the caller to write its
        new exchanges again as new chunks, in order)."""
        fields = await _terms_of([chunk.text for chunk in chunks])

        async def write(conn: Connection) -> tuple[list[int | None], list[KeywordRow]]:
            ids: list[int | None] = []
            keyword_rows: list[KeywordRow] = []
            turn_rows: list[tuple[int, int, int | None]] = []  # (memory, turn, message) taken in
            part_rows: list[tuple[int, int]] = []  # (memory, message) of split replies taken in
            gone = await Tombstones.read(
                conn, {(chunk.scope, chunk.channel_id) for chunk in chunks}
            )
            dropped: set[int] = set()  # channels whose grown chunk was dropped
            for chunk, vector, terms in zip(chunks, vectors, fields, strict=True):
                if chunk.channel_id in dropped or (
                    chunk.id is None
                    and gone.cover(chunk.scope, chunk.author_id, chunk.channel_id, chunk.turn_id)
                ):
                    ids.append(None)
                    continue
                if chunk.id is None:
                    memory_id = await conn.fetchval(
                        "INSERT INTO memories (scope, author_id, author_name, source, text, "
                        "channel_id, turns, created_at, model, vector) "
                        "VALUES (?, ?, ?, 'conversation', ?, ?, ?, ?, ?, ?) RETURNING id",
                        (
                            chunk.scope.key,
                            chunk.author_id,
                            chunk.author_name,
                            chunk.text,
                            chunk.channel_id,
                            chunk.turns,
                            chunk.created_at,
                            model,
                            blob(vector),
                        ),
                    )
                    ids.append(memory_id)
                    keyword_rows.append((memory_id, chunk.scope, terms))
                    turn_rows += _turn_rows(memory_id, chunk.held)
                    part_rows += [(memory_id, message_id) for message_id in chunk.parts]
                    continue
                changed = await conn.execute(
                    "UPDATE memories SET text = ?, turns = ?, created_at = ?, model = ?, "
                    "vector = ? WHERE id = ? AND text = ?",
                    (
                        chunk.text,
                        chunk.turns,
                        chunk.created_at,
                        model,
                        blob(vector),
                        chunk.id,
                        chunk.stored_text,
                    ),
                )
                if changed:
                    keyword_rows.append((chunk.id, chunk.scope, terms))
                    turn_rows += _turn_rows(chunk.id, chunk.held)
                    part_rows += [(chunk.id, message_id) for message_id in chunk.parts]
                else:
                    dropped.add(chunk.channel_id)
                ids.append(chunk.id if changed else None)
            await self.keywords.write(conn, keyword_rows)
            await conn.executemany(_ADD_TURNS, turn_rows)
            await conn.executemany(_ADD_PARTS, part_rows)
            return ids, keyword_rows

        ids, keyword_rows = await self.db.in_transaction(write)
        self.keywords.written(keyword_rows)
        return ids

    # Reading

    async def tombstones(self, places: Collection[tuple[Scope, int | None]]) -> Tombstones:
        """The forgetting and purges bearing on these places now (`write_chunks` reads
        them again in its transaction)."""
        return await Tombstones.read(self.db, places)

    async def open_chunk(self, channel_id: int) -> Chunk | None:
        """The newest conversation chunk of a channel (it may still grow)."""
        row = await self.db.fetchone(
            "SELECT id, scope, channel_id, author_id, author_name, text, turns, created_at "
            "FROM memories WHERE channel_id = ? AND source = 'conversation' "
            "ORDER BY id DESC LIMIT 1",
            (channel_id,),
        )
        if row is None:
            return None
        fields = {**dict(row), "scope": Scope.parse(row["scope"]), "stored_text": row["text"]}
        return Chunk(**fields)

    async def get(self, scope: Scope, ids: Sequence[int]) -> dict[int, Memory]:
        """The memories with these ids that exist and belong to `scope`."""
        memories, _ = await self.candidates(scope, ids)
        return memories

    async def candidates(
        self, scope: Scope, ids: Sequence[int], model: str = "", vectors_of: Collection[int] = ()
    ) -> tuple[dict[int, Memory], dict[int, np.ndarray]]:
        """`get`, with the stored vectors of those in `vectors_of` that `model` made, in
        the same read (a search's candidates that only its keywords found)."""
        # By primary key; the scope is checked on the rows (as a WHERE term SQLite would
        # walk the scope's index instead, every row of a big scope).
        memories: dict[int, Memory] = {}
        vectors: dict[int, np.ndarray] = {}
        key = scope.key
        for chunk in in_batches(ids):
            batch = [int(i) for i in chunk]
            wanted = [i for i in batch if i in vectors_of]
            vector = "NULL"
            if wanted:
                marks = ",".join("?" * len(wanted))
                vector = f"CASE WHEN model = ? AND id IN ({marks}) THEN vector END"
            rows = await self.db.fetchall(
                f"SELECT {_COLUMNS}, {vector} FROM memories "
                f"WHERE id IN ({','.join('?' * len(batch))})",
                [model, *wanted, *batch] if wanted else batch,
            )
            for row in rows:
                if row[1] != key:
                    continue
                memories[row[0]] = _memory(row, scope)
                if row[8] is not None:
                    vectors[row[0]] = np.frombuffer(row[8], dtype=np.float32)
        return memories, vectors

    async def _by_ids(self, ids: Sequence[int]) -> list[Row]:
        rows: list[Row] = []
        for chunk in in_batches(ids):
            batch = [int(i) for i in chunk]
            marks = ",".join("?" * len(batch))
            rows += await self.db.fetchall(
                f"SELECT {_COLUMNS} FROM memories WHERE id IN ({marks})", batch
            )
        return rows

    async def search_terms(
        self, scope: Scope, searched: Sequence[str], limit: int, *, names_weight: float
    ) -> list[tuple[int, float]]:
        """(id, BM25 score) of the scope's memories holding any of the `searched` terms
        (`scoring.query_terms`), best first, speakers' names weighted by `names_weight`.
        Terms in more than COMMON_SHARE of all memories are left out: scoring is the
        cost of a search, one score per memory found."""
        if not searched:
            return []
        return await self.keywords.search(scope, searched, limit, names_weight=names_weight)

    async def without_terms(self, after: int, limit: int) -> list[Memory]:
        """Memories after id `after`, in id order, that have no keyword rows yet."""
        rows = await self._by_ids(await self.keywords.unindexed(after, limit))
        return sorted((_memory(row) for row in rows), key=lambda memory: memory.id)

    async def write_terms(self, memories: Sequence[Memory]) -> None:
        """Write memories' keyword rows; none for one deleted meanwhile (forgotten while
        its terms were made): its words would outlive it (FTS5 rows have no foreign key;
        PostgreSQL's refuse it)."""
        fields = await _terms_of([memory.describe() for memory in memories])
        rows = [(m.id, m.scope, terms) for m, terms in zip(memories, fields, strict=True)]

        async def write(conn: Connection) -> list[KeywordRow]:
            stored: set[int] = set()
            for batch in in_batches([memory_id for memory_id, _, _ in rows]):
                marks = ",".join("?" * len(batch))
                found = await conn.fetchall(f"SELECT id FROM memories WHERE id IN ({marks})", batch)
                stored.update(row[0] for row in found)
            kept = [row for row in rows if row[0] in stored]
            await self.keywords.write(conn, kept)
            return kept

        self.keywords.written(await self.db.in_transaction(write))

    async def by_author(
        self, scope: Scope, author_id: int, *, limit: int, offset: int = 0
    ) -> list[Memory]:
        """An author's memories in a scope, newest first."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM memories WHERE scope = ? AND author_id = ? "
            "ORDER BY id DESC LIMIT ? OFFSET ?",
            (scope.key, author_id, limit, offset),
        )
        return [_memory(row) for row in rows]

    async def told(
        self, scope: Scope, author_id: int, text: str, channel_id: int | None
    ) -> Memory | None:
        """The fact an author told the bot in a scope (source 'user') that says exactly
        `text` and is recalled wherever one told in `channel_id` would be, if any."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM memories WHERE scope = ? AND author_id = ? AND source = "
            "'user' AND text = ? AND (channel_id IS NULL OR channel_id = ?) "
            "ORDER BY channel_id IS NOT NULL LIMIT 1",
            (scope.key, author_id, text, channel_id),
        )
        return None if row is None else _memory(row)

    async def count_by_author(self, scope: Scope, author_id: int) -> int:
        return await self.db.fetchval(
            "SELECT count(*) FROM memories WHERE scope = ? AND author_id = ?",
            (scope.key, author_id),
        )

    async def counts(self, scope: Scope) -> dict[str, int]:
        """Memories in a scope by source."""
        rows = await self.db.fetchall(
            "SELECT source, count(*) FROM memories WHERE scope = ? GROUP BY source", (scope.key,)
        )
        return {row[0]: row[1] for row in rows}

    async def scopes(self) -> list[Scope]:
        rows = await self.db.fetchall("SELECT DISTINCT scope FROM memories")
        return sorted(Scope.parse(row[0]) for row in rows)

    async def stale(self, model: str, after: int, limit: int) -> list[Memory]:
        """Memories after id `after`, in id order, embedded by another model (two index
        ranges, not a table scan)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM memories WHERE (model < ? OR model > ?) AND id > ? "
            "ORDER BY id LIMIT ?",
            (model, model, after, limit),
        )
        return [_memory(row) for row in rows]

    async def export_scope(self, scope: Scope) -> list[dict[str, object]]:
        """A scope's memories as rows, oldest first, without their vectors."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS}, model FROM memories WHERE scope = ? ORDER BY id",
            (scope.key,),
        )
        return [dict(row) for row in rows]
