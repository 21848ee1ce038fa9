"""Roleplay scenes in the database: which channels run one, with whom, and what it established.

Owns `rp_scenes` (one scene per channel or thread) and `rp_worlds` (each server's world
text). The channels running a scene are also kept in memory, loaded at start, so every
message can ask `running` without a query; at most `MAX_SCENES` scenes run at once.
Other bot processes hear of scenes started and ended (topic :data:`TOPIC`, key the channel).
A data owner: a deleted channel ends its scene, a left server loses its scenes and world.
A deleted character leaves its scenes (`remove_character`).
Portable SQL: timestamps are unix times from Python.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cogs.roleplay.errors import RoleplayError
from cogs.roleplay.scene_state import State, dumps, loads
from utils.data_owners import Place
from utils.db import EVERYTHING, Connection, Database

MAX_SCENES = 10_000
"""Scenes running at once on the whole bot (the bound of the in-memory set)."""
TOPIC = "scenes"


@dataclass(frozen=True, slots=True)
class Scene:
    channel_id: int
    guild_id: int
    owner_id: int
    world: str | None  # its own; None: the server's
    characters: tuple[int, ...]  # character ids, in speaking order
    state: State
    turns: int
    started_at: float


_COLUMNS = "channel_id, guild_id, owner_id, world, characters, state, turns, started_at"


class SceneStore:
    """The only reader and writer of ``rp_scenes`` and ``rp_worlds``."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._running: set[int] = set()

    async def load(self) -> None:
        """Learn which channels run a scene (at start, and after missed changes)."""
        async with self.db.transaction() as conn:  # see `changed`
            rows = await conn.fetchall("SELECT channel_id FROM rp_scenes LIMIT ?", (MAX_SCENES,))
            self._running = {row[0] for row in rows}

    async def changed(self, topic: str, key: str) -> None:
        """Another process started or ended a scene: learn whether the channel runs one
        (all of them after EVERYTHING). Read in a transaction, so that no write of this
        process comes between the read and the copy (each write updates it as it commits)."""
        if topic == EVERYTHING or (topic == TOPIC and key == EVERYTHING):
            await self.load()
        elif topic == TOPIC:
            channel_id = int(key)
            async with self.db.transaction() as conn:
                found = await conn.fetchval(
                    "SELECT 1 FROM rp_scenes WHERE channel_id = ?", (channel_id,)
                )
                if found:
                    self._running.add(channel_id)
                else:
                    self._running.discard(channel_id)

    def running(self, channel_id: int) -> bool:
        return channel_id in self._running

    async def start(
        self,
        guild_id: int,
        channel_id: int,
        owner_id: int,
        characters: Sequence[int],
        world: str | None,
    ) -> Scene:
        """A new scene; RoleplayError if one runs in the channel or too many run."""
        if len(self._running) >= MAX_SCENES:
            raise RoleplayError("Too many scenes are running on this bot; try again later.")
        now = self.clock()
        async with self.db.transaction() as conn:
            started = await conn.fetchval(
                f"INSERT INTO rp_scenes ({_COLUMNS}, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) "
                "ON CONFLICT (channel_id) DO NOTHING RETURNING channel_id",
                (
                    channel_id,
                    guild_id,
                    owner_id,
                    world,
                    json.dumps(list(characters)),
                    "[]",
                    now,
                    now,
                ),
            )
        if started is None:
            raise RoleplayError("A scene is already running here; `/scene end` it first.")
        self._running.add(channel_id)
        await self.db.notify(TOPIC, channel_id)
        return Scene(channel_id, guild_id, owner_id, world, tuple(characters), {}, 0, now)

    async def get(self, channel_id: int) -> Scene | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM rp_scenes WHERE channel_id = ?", (channel_id,)
        )
        if row is None:
            return None
        return Scene(
            row["channel_id"],
            row["guild_id"],
            row["owner_id"],
            row["world"],
            tuple(json.loads(row["characters"])),
            loads(row["state"]),
            row["turns"],
            row["started_at"],
        )

    async def set_characters(
        self, channel_id: int, characters: Sequence[int], *, was: Sequence[int]
    ) -> bool:
        """Change the cast from ``was``; False if it is no longer that (another change
        came first, or the scene ended), and nothing is changed."""
        changed = await self.db.execute(
            "UPDATE rp_scenes SET characters = ?, updated_at = ? "
            "WHERE channel_id = ? AND characters = ?",
            (json.dumps(list(characters)), self.clock(), channel_id, json.dumps(list(was))),
        )
        return bool(changed)

    async def change_state(
        self, channel_id: int, started_at: float, change: Callable[[State], State]
    ) -> bool:
        """Replace the state of the scene started at ``started_at`` by ``change(state)``,
        read and written in one transaction (a correction and a background update never
        overwrite each other); False if that scene is over."""

        async def work(conn: Connection) -> bool:
            text = await conn.fetchval(
                "SELECT state FROM rp_scenes WHERE channel_id = ? AND started_at = ?",
                (channel_id, started_at),
            )
            if text is None:
                return False
            await conn.execute(
                "UPDATE rp_scenes SET state = ?, updated_at = ? WHERE channel_id = ?",
                (dumps(change(loads(text))), self.clock(), channel_id),
            )
            return True

        return await self.db.in_transaction(work)

    async def remove_character(self, guild_id: int, character_id: int) -> list[int]:
        """A deleted character leaves this server's scenes; those it leaves empty end.
        Returns the channels of the scenes that ended."""
        ended: list[int] = []
        now = self.clock()
        async with self.db.transaction() as conn:
            rows = await conn.fetchall(
                "SELECT channel_id, characters FROM rp_scenes WHERE guild_id = ?", (guild_id,)
            )
            for row in rows:
                channel_id, cast = row["channel_id"], json.loads(row["characters"])
                if character_id not in cast:
                    continue
                cast.remove(character_id)
                if cast:
                    await conn.execute(
                        "UPDATE rp_scenes SET characters = ?, updated_at = ? WHERE channel_id = ?",
                        (json.dumps(cast), now, channel_id),
                    )
                else:
                    await conn.execute("DELETE FROM rp_scenes WHERE channel_id = ?", (channel_id,))
                    ended.append(channel_id)
        self._running.difference_update(ended)  # as it commits: see `changed`
        for channel_id in ended:
            await self.db.notify(TOPIC, channel_id)
        return ended

    async def count_turn(self, channel_id: int, started_at: float) -> int:
        """Count one more turn of the scene started at ``started_at``; returns its turns
        so far (0: that scene is over, perhaps another one runs here now)."""
        async with self.db.transaction() as conn:
            return await conn.fetchval(
                "UPDATE rp_scenes SET turns = turns + 1, updated_at = ? "
                "WHERE channel_id = ? AND started_at = ? RETURNING turns",
                (self.clock(), channel_id, started_at),
                default=0,
            )

    async def end(self, channel_id: int) -> bool:
        ended = await self.db.execute("DELETE FROM rp_scenes WHERE channel_id = ?", (channel_id,))
        self._running.discard(channel_id)  # as it commits: see `changed`
        await self.db.notify(TOPIC, channel_id)
        return bool(ended)

    async def world(self, guild_id: int) -> str | None:
        return await self.db.fetchval("SELECT world FROM rp_worlds WHERE guild_id = ?", (guild_id,))

    async def set_world(self, guild_id: int, world: str | None) -> None:
        if world is None:
            await self.db.execute("DELETE FROM rp_worlds WHERE guild_id = ?", (guild_id,))
            return
        now = self.clock()
        await self.db.execute(
            "INSERT INTO rp_worlds (guild_id, world, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET world = excluded.world, "
            "updated_at = excluded.updated_at",
            (guild_id, world, now),
        )

    async def delete_channel(self, channel_id: int) -> int:
        return int(await self.end(channel_id))

    async def delete_guild(self, guild_id: int) -> int:
        async with self.db.transaction() as conn:
            ended = await conn.fetchall(
                "DELETE FROM rp_scenes WHERE guild_id = ? RETURNING channel_id", (guild_id,)
            )
            worlds = await conn.execute("DELETE FROM rp_worlds WHERE guild_id = ?", (guild_id,))
        self._running.difference_update(row[0] for row in ended)
        await self.db.notify(TOPIC, EVERYTHING)
        return len(ended) + worlds

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall(
            "SELECT guild_id, channel_id FROM rp_scenes UNION SELECT guild_id, NULL FROM rp_worlds"
        )
        return {(row[0], row[1]) for row in rows}

    async def export_guild(self, guild_id: int) -> list[tuple[str, dict[str, object]]]:
        """A guild's scenes and world as (table, row) pairs."""
        rows: list[tuple[str, dict[str, object]]] = []
        for table, order in (("rp_scenes", "channel_id"), ("rp_worlds", "guild_id")):
            found = await self.db.fetchall(
                f"SELECT * FROM {table} WHERE guild_id = ? ORDER BY {order}", (guild_id,)
            )
            rows += [(table, dict(row)) for row in found]
        return rows
