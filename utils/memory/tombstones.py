"""What work under way must not write back: the memories people told the bot to forget
(all of a person's up to a message, `memory_forgotten`; the chat turns of single
memories forgotten that consolidation may still read, `memory_forgotten_turns`) and the
channels and guilds just purged (`memory_purges`). The store reads them in the
transaction of each write (`Tombstones`), and `deletions` records a purge in the
transaction that deletes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from utils.db import Connection, Reads, in_batches
from utils.memory.chunks import Held
from utils.memory.records import Scope

PURGES_KEPT = 86_400.0  # seconds a purge is kept in mind: far longer than work under way runs
# Forgotten chat turns kept in mind at most: each goes once consolidation read past it
# or its channel's log lost it, however long that takes (the bot down, consolidation
# off); past this many (far more than ever wait), those of the oldest turns go.
FORGOTTEN_TURNS_MAX = 100_000


@dataclass(frozen=True)
class Purge:
    """A channel's or guild's memories being purged: the newest chat turn of the log
    then (`upto_id`; none of the place's turns up to it is written back) and when."""

    upto_id: int
    at: float


Forgotten = dict[tuple[Scope, int], int]  # (scope, person): forgotten up to this message
Purged = dict[tuple[str, int], int]  # ('channel' | 'guild', id): purged up to this turn


@dataclass(frozen=True)
class Tombstones:
    """The forgetting and purges that bear on some places (scope, channel) and turns."""

    forgotten: Forgotten
    purged: Purged
    turns: set[int] = field(default_factory=set[int])  # in single memories forgotten

    @classmethod
    async def read(
        cls,
        conn: Connection | Reads,
        places: Collection[tuple[Scope, int | None]],
        turn_ids: Collection[int] = (),
    ) -> Tombstones:
        return cls(
            await forgotten(conn, {scope for scope, _ in places}),
            await _purged(conn, places),
            await _forgotten_turns(conn, turn_ids),
        )

    def cover(
        self,
        scope: Scope,
        author_id: int,
        channel_id: int | None,
        turn_id: int | None,
        held: Sequence[Held] = (),
    ) -> bool:
        """Whether a memory learnt from chat turn `turn_id` on (holding turns `held`) by
        `author_id` in this place is one to leave unwritten."""
        if any(held_id in self.turns for held_id, _ in held):
            return True
        if turn_id is None:
            return False
        upto = self.forgotten.get((scope, author_id))
        uptos = (
            upto,
            self.purged.get(("channel", channel_id or 0)),
            self.purged.get(("guild", scope.guild_id or 0)),
        )
        return any(upto is not None and turn_id <= upto for upto in uptos)


async def forgotten(conn: Connection | Reads, scopes: Collection[Scope]) -> Forgotten:
    found: Forgotten = {}
    for scope in scopes:
        rows = await conn.fetchall(
            "SELECT author_id, upto_id FROM memory_forgotten WHERE scope = ?", (scope.key,)
        )
        found.update(((scope, row[0]), row[1]) for row in rows)
    return found


async def record_purge(conn: Connection, kind: str, target_id: int, purge: Purge) -> None:
    await conn.execute("DELETE FROM memory_purges WHERE purged_at < ?", (purge.at - PURGES_KEPT,))
    await conn.execute(
        "INSERT INTO memory_purges (kind, target_id, upto_id, purged_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, target_id) DO UPDATE SET upto_id = excluded.upto_id, "
        "purged_at = excluded.purged_at",
        (kind, target_id, purge.upto_id, purge.at),
    )


async def bound_forgotten_turns(conn: Connection) -> None:
    """Keep the FORGOTTEN_TURNS_MAX newest forgotten chat turns in mind at most."""
    await conn.execute(
        "DELETE FROM memory_forgotten_turns WHERE turn_id < (SELECT turn_id FROM "
        "memory_forgotten_turns ORDER BY turn_id DESC LIMIT 1 OFFSET ?)",
        (FORGOTTEN_TURNS_MAX - 1,),
    )


async def _purged(conn: Connection | Reads, places: Collection[tuple[Scope, int | None]]) -> Purged:
    """The purges of these (scope, channel) places still kept in mind."""
    targets = {("channel", channel) for _, channel in places if channel is not None}
    targets |= {("guild", scope.guild_id) for scope, _ in places if scope.guild_id is not None}
    found: Purged = {}
    for kind, target_id in targets:
        upto = await conn.fetchval(
            "SELECT upto_id FROM memory_purges WHERE kind = ? AND target_id = ?",
            (kind, target_id),
        )
        if upto is not None:
            found[kind, target_id] = upto
    return found


async def _forgotten_turns(conn: Connection | Reads, turn_ids: Collection[int]) -> set[int]:
    """Those of `turn_ids` in a single memory forgotten since (`memory_forgotten_turns`)."""
    found: set[int] = set()
    ids = sorted(turn_ids)
    for batch in in_batches(ids):
        rows = await conn.fetchall(
            "SELECT turn_id FROM memory_forgotten_turns "
            f"WHERE turn_id IN ({','.join('?' * len(batch))})",
            batch,
        )
        found.update(row[0] for row in rows)
    return found
