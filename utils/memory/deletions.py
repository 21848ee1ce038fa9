"""Every path by which memories leave the database: one memory or all of a person's
(`/memory forget`), the chunks holding messages deleted or edited in Discord, a
channel's or a guild's (retention), the old ones (`scripts/db.py prune`); and where
memories are kept (`places`, for retention). Apart from `MemoryStore`, which writes
and reads them, as each deletion also leaves behind, in its transaction, what work
under way (queued indexing, a consolidation pass) must not write back: the chat turns
of a single memory forgotten (`memory_forgotten_turns`), up to which message a
person's are forgotten (`memory_forgotten`), a purge (`tombstones.record_purge`).
A memory's keyword rows go with it (`keywords`); dropping its id from the FAISS
indexes is the caller's (`MemoryWriter.delete`), and, for a channel's or a guild's, the
scope's owner's when that is another process (told: `TOPIC`; a retention pass runs in
whichever process holds its lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from utils.data_owners import Place
from utils.db import Connection, Database, Row, in_batches
from utils.memory.records import Scope
from utils.memory.tombstones import Purge, bound_forgotten_turns, record_purge

TOPIC = "memory"  # of the deletions told to other processes (key: the scope)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class MemoryDeletions:
    """Deletes memories (one, a person's, a channel's, a scope's, the old ones) and
    says where memories are kept (`places`, for retention)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # What people have the bot forget

    async def delete(self, scope: Scope, author_id: int, memory_id: int) -> list[int]:
        """Delete one of an author's memories in a scope; the ids deleted. What was
        forgotten does not live on as a fact: a conversation memory takes with it the
        facts consolidation learnt from its chat turns, and those turns that it has not
        read yet are noted, so that it skips them until it reads past them (the oldest
        go past `FORGOTTEN_TURNS_MAX`)."""
        now = self.clock()

        async def delete(conn: Connection) -> list[Row]:
            await conn.execute(
                "INSERT INTO memory_forgotten_turns "
                "(turn_id, channel_id, guild_id, forgotten_at) "
                "SELECT memory_turns.turn_id, memories.channel_id, ?, ? FROM memory_turns "
                "JOIN memories ON memories.id = memory_turns.memory_id "
                "WHERE memories.id = ? AND memories.scope = ? AND memories.author_id = ? "
                "AND memories.channel_id IS NOT NULL AND memory_turns.turn_id > COALESCE(("
                "SELECT upto_id FROM memory_consolidation "
                "WHERE memory_consolidation.channel_id = memories.channel_id), 0) "
                "ON CONFLICT (turn_id) DO UPDATE SET forgotten_at = excluded.forgotten_at",
                (scope.guild_id, now, memory_id, scope.key, author_id),
            )
            await bound_forgotten_turns(conn)
            return await conn.fetchall(
                "DELETE FROM memories WHERE scope = ? AND author_id = ? AND (id = ? OR ("
                "source = 'consolidation' AND id IN (SELECT learnt.memory_id "
                "FROM memory_turns learnt JOIN memory_turns held ON held.turn_id = learnt.turn_id "
                "JOIN memories chunk ON chunk.id = held.memory_id WHERE chunk.id = ? "
                "AND chunk.source = 'conversation' AND chunk.scope = ? AND chunk.author_id = ?"
                "))) RETURNING id",
                (scope.key, author_id, memory_id, memory_id, scope.key, author_id),
            )

        return [row[0] for row in await self.db.in_transaction(delete)]

    async def forget(self, scope: Scope, author_id: int, upto_id: int) -> list[int]:
        """Delete all of an author's memories in a scope, and note that their chat
        messages up to `upto_id` are never to be remembered again; the ids deleted."""

        async def forget(conn: Connection) -> list[Row]:
            rows = await conn.fetchall(
                "DELETE FROM memories WHERE scope = ? AND author_id = ? RETURNING id",
                (scope.key, author_id),
            )
            await conn.execute(
                "INSERT INTO memory_forgotten (scope, author_id, upto_id) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, author_id) DO UPDATE SET upto_id = "
                "CASE WHEN excluded.upto_id > memory_forgotten.upto_id "
                "THEN excluded.upto_id ELSE memory_forgotten.upto_id END",
                (scope.key, author_id, upto_id),
            )
            return rows

        return [row[0] for row in await self.db.in_transaction(forget)]

    async def forget_turns(
        self, channel_id: int, guild_id: int | None, turn_ids: Sequence[int]
    ) -> None:
        """Note chat turns that consolidation is never to read (they are no memory yet:
        an exchange in which its author had all forgotten)."""
        now = self.clock()

        async def note(conn: Connection) -> None:
            await conn.executemany(
                "INSERT INTO memory_forgotten_turns "
                "(turn_id, channel_id, guild_id, forgotten_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (turn_id) DO UPDATE SET forgotten_at = excluded.forgotten_at",
                [(turn_id, channel_id, guild_id, now) for turn_id in turn_ids],
            )
            await bound_forgotten_turns(conn)

        await self.db.in_transaction(note)

    # Retention

    async def delete_channel(
        self, channel_id: int, purge: Purge | None = None
    ) -> list[tuple[Scope, int]]:
        """Delete the memories of a channel (its conversation chunks, the facts learnt
        there), its consolidation mark and what was forgotten there; the (scope, id) of
        each memory deleted. A `purge` (work may be under way) is noted, so that none of
        it is written back."""

        async def delete(conn: Connection) -> list[Row]:
            rows = await conn.fetchall(
                "DELETE FROM memories WHERE channel_id = ? RETURNING scope, id", (channel_id,)
            )
            await conn.execute(
                "DELETE FROM memory_consolidation WHERE channel_id = ?", (channel_id,)
            )
            await conn.execute(
                "DELETE FROM memory_forgotten_turns WHERE channel_id = ?", (channel_id,)
            )
            if purge is not None:
                await record_purge(conn, "channel", channel_id, purge)
            return rows

        deleted = [(Scope.parse(row[0]), row[1]) for row in await self.db.in_transaction(delete)]
        await self._tell(scope for scope, _ in deleted)
        return deleted

    async def delete_saying(
        self,
        channel_id: int,
        message_ids: Sequence[int],
        turn_ids: Sequence[int],
        lines: Sequence[str],
        kept: str | None = None,
    ) -> list[tuple[Scope, int]]:
        """Delete the conversation chunks of a channel that hold any of these Discord
        messages or chat turns (of messages deleted or edited in Discord: the chat
        history may no longer hold them; `lines` are the turns it does hold as a chunk
        holds them, `chunks.chunk_line`), and the facts learnt from them; the (scope, id)
        of each memory deleted. A chunk that has `kept` as a whole line stays.

        A chunk holds the turns `memory_turns` names, and so does a fact learnt from one.
        A chunk that holds messages with no row there (stored before the rows were kept,
        or grown from such a chunk: `memory_untracked` lists them) also holds each of
        `lines` that is a whole line of its text."""
        held = "DELETE FROM memories WHERE channel_id = ? AND "
        # Driven by the short list, not by every chunk of the channel.
        untracked = (
            "DELETE FROM memories WHERE id IN "
            "(SELECT memory_id FROM memory_untracked WHERE channel_id = ?) "
            "AND source = 'conversation' AND "
        )
        unless = ""  # a fact can't say what its message says now: it goes with it
        if kept is not None:
            unless = (
                " AND (source != 'conversation' OR NOT ('\n' || text || '\n') LIKE ? ESCAPE '\\')"
            )
        kept_params = () if kept is None else (f"%\n{_like_escaped(kept)}\n%",)

        async def delete(conn: Connection) -> list[Row]:
            rows: list[Row] = []
            for column, ids in (("message_id", message_ids), ("turn_id", turn_ids)):
                for chunk in in_batches(ids):
                    batch = [int(i) for i in chunk]
                    marks = ",".join("?" * len(batch))
                    # A Discord message may also be an earlier one of a split reply.
                    parts = (
                        f" UNION SELECT memory_id FROM memory_reply_parts "
                        f"WHERE message_id IN ({marks})"
                        if column == "message_id"
                        else ""
                    )
                    rows += await conn.fetchall(
                        f"{held}id IN (SELECT memory_id FROM memory_turns "
                        f"WHERE {column} IN ({marks}){parts}){unless} RETURNING scope, id",
                        (channel_id, *batch, *(batch if parts else ()), *kept_params),
                    )
            for batch in in_batches(lines):
                # A whole line: between newlines once the text is wrapped in two (the
                # SQL strings hold a newline character).
                holds = " OR ".join("('\n' || text || '\n') LIKE ? ESCAPE '\\'" for _ in batch)
                rows += await conn.fetchall(
                    f"{untracked}({holds}) RETURNING scope, id",
                    (channel_id, *(f"%\n{_like_escaped(line)}\n%" for line in batch)),
                )
            return rows

        return [(Scope.parse(row[0]), row[1]) for row in await self.db.in_transaction(delete)]

    async def delete_scope(self, scope: Scope, purge: Purge | None = None) -> list[int]:
        """Delete every memory of a scope (and what was forgotten there; of a guild, how
        far its channels were read); the ids deleted. A `purge` of a guild (work may be
        under way) is noted, so that none of it is written back."""

        async def delete(conn: Connection) -> list[Row]:
            rows = await conn.fetchall(
                "DELETE FROM memories WHERE scope = ? RETURNING id", (scope.key,)
            )
            await conn.execute("DELETE FROM memory_forgotten WHERE scope = ?", (scope.key,))
            if scope.guild_id is not None:
                await conn.execute(
                    "DELETE FROM memory_consolidation WHERE guild_id = ?", (scope.guild_id,)
                )
                await conn.execute(
                    "DELETE FROM memory_forgotten_turns WHERE guild_id = ?", (scope.guild_id,)
                )
                if purge is not None:
                    await record_purge(conn, "guild", scope.guild_id, purge)
            return rows

        deleted = [row[0] for row in await self.db.in_transaction(delete)]
        await self._tell([scope])
        return deleted

    async def _tell(self, scopes: Iterable[Scope]) -> None:
        """Tell the other processes that memories of `scopes` were deleted, so that a
        scope's owner drops its index (`ScopeIndexes.deleted_elsewhere`)."""
        for scope in set(scopes):
            await self.db.notify(TOPIC, scope.key)

    async def prune_before(self, cutoff: float, *, include_user: bool) -> list[tuple[Scope, int]]:
        """Delete memories older than `cutoff` (unix time), keeping what people added
        themselves unless `include_user`; the (scope, id) of each memory deleted."""
        sql = "DELETE FROM memories WHERE created_at < ?"
        if not include_user:
            sql += " AND source != 'user'"
        rows = await self.db.in_transaction(
            lambda conn: conn.fetchall(sql + " RETURNING scope, id", (cutoff,))
        )
        return [(Scope.parse(row[0]), row[1]) for row in rows]

    async def places(self) -> set[Place]:
        """The guilds with memories, with the channels they were learnt in, and the
        channels consolidation read or holds forgotten turns of (see
        `utils.data_owners.Place`)."""
        rows = await self.db.fetchall(
            "SELECT scope, channel_id FROM memories WHERE scope LIKE 'guild:%' "
            "UNION SELECT scope, NULL FROM memory_forgotten WHERE scope LIKE 'guild:%'"
        )
        marks = await self.db.fetchall(
            "SELECT guild_id, channel_id FROM memory_consolidation WHERE guild_id IS NOT NULL "
            "UNION SELECT guild_id, channel_id FROM memory_forgotten_turns "
            "WHERE guild_id IS NOT NULL"
        )
        return {(Scope.parse(row[0]).id, row[1]) for row in rows} | {
            (row[0], row[1]) for row in marks
        }
