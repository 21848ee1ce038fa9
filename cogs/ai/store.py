"""Conversation history and per-channel AI preferences in SQLite."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from utils.db import Database
from utils.text import estimate_tokens

Role = Literal["user", "model"]


@dataclass(frozen=True)
class Turn:
    """One stored message of a conversation."""

    id: int
    role: Role
    author_id: int
    author_name: str
    content: str
    tokens: int
    created_at: float


@dataclass(frozen=True)
class NewTurn:
    """A turn about to be stored."""

    role: Role
    author_id: int
    author_name: str
    content: str
    message_id: int | None = None


@dataclass(frozen=True)
class ChannelPrefs:
    persona: str | None = None
    system_prompt: str | None = None
    autorespond: bool = False
    summary: str | None = None
    summary_upto: int = 0


_TURN_COLUMNS = "id, role, author_id, author_name, content, tokens, created_at"


class ChatStore:
    """Reads and writes the AI tables; knows nothing about Discord."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Conversation

    async def add_turns(self, guild_id: int | None, channel_id: int, turns: list[NewTurn]) -> None:
        """Store an exchange atomically (a failed generation stores nothing)."""
        now = time.time()
        await self.db.executemany(
            "INSERT INTO ai_messages (guild_id, channel_id, message_id, author_id, author_name, "
            "role, content, tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    guild_id,
                    channel_id,
                    t.message_id,
                    t.author_id,
                    t.author_name,
                    t.role,
                    t.content,
                    estimate_tokens(t.content),
                    now,
                )
                for t in turns
            ],
        )

    async def recent_turns(
        self, channel_id: int, after_id: int, budget: int
    ) -> tuple[list[Turn], bool]:
        """The newest turns after `after_id` that fit `budget` tokens, oldest first,
        and whether older unsummarised turns were left out."""
        rows = await self.db.fetchall(
            f"SELECT {_TURN_COLUMNS} FROM ai_messages WHERE channel_id = ? AND id > ? "
            "ORDER BY id DESC",
            (channel_id, after_id),
        )
        picked: list[Turn] = []
        used = 0
        for row in rows:
            if used + row["tokens"] > budget:
                return picked[::-1], True
            used += row["tokens"]
            picked.append(Turn(**dict(row)))
        return picked[::-1], False

    async def turns(
        self, channel_id: int, *, after_id: int = 0, upto_id: int | None = None
    ) -> list[Turn]:
        sql = f"SELECT {_TURN_COLUMNS} FROM ai_messages WHERE channel_id = ? AND id > ?"
        params: list[int] = [channel_id, after_id]
        if upto_id is not None:
            sql += " AND id <= ?"
            params.append(upto_id)
        rows = await self.db.fetchall(sql + " ORDER BY id", params)
        return [Turn(**dict(row)) for row in rows]

    async def count(self, channel_id: int) -> int:
        return await self.db.fetchval(
            "SELECT count(*) FROM ai_messages WHERE channel_id = ?", (channel_id,)
        )

    async def prune(self, channel_id: int, keep: int) -> int:
        """Delete all but the newest `keep` turns of a channel."""
        return await self.db.execute(
            "DELETE FROM ai_messages WHERE channel_id = ? AND id <= ("
            "SELECT id FROM ai_messages WHERE channel_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (channel_id, channel_id, keep),
        )

    async def reset(self, channel_id: int) -> int:
        """Forget a channel's conversation and summary (its preferences stay)."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM ai_messages WHERE channel_id = ?", (channel_id,)
            )
            await conn.execute(
                "UPDATE ai_channels SET summary = NULL, summary_upto = 0 WHERE channel_id = ?",
                (channel_id,),
            )
            return cursor.rowcount

    # Channel preferences

    async def channel(self, channel_id: int) -> ChannelPrefs:
        row = await self.db.fetchone(
            "SELECT persona, system_prompt, autorespond, summary, summary_upto "
            "FROM ai_channels WHERE channel_id = ?",
            (channel_id,),
        )
        if row is None:
            return ChannelPrefs()
        return ChannelPrefs(
            persona=row["persona"],
            system_prompt=row["system_prompt"],
            autorespond=bool(row["autorespond"]),
            summary=row["summary"],
            summary_upto=row["summary_upto"],
        )

    async def update_channel(self, guild_id: int | None, channel_id: int, **values: object) -> None:
        """Set some of persona, system_prompt, autorespond, summary, summary_upto."""
        allowed = {"persona", "system_prompt", "autorespond", "summary", "summary_upto"}
        if not values or not values.keys() <= allowed:
            raise ValueError(f"unknown channel preference in {sorted(values)}")
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{name} = excluded.{name}" for name in values)
        await self.db.execute(
            f"INSERT INTO ai_channels (channel_id, guild_id, {columns}) VALUES (?, ?, {marks}) "
            f"ON CONFLICT (channel_id) DO UPDATE SET {updates}",
            (channel_id, guild_id, *values.values()),
        )

    async def autorespond_channels(self) -> set[int]:
        rows = await self.db.fetchall("SELECT channel_id FROM ai_channels WHERE autorespond = 1")
        return {row[0] for row in rows}

    # Guild preferences

    async def guild_model(self, guild_id: int | None) -> str | None:
        if guild_id is None:
            return None
        return await self.db.fetchval("SELECT model FROM ai_guilds WHERE guild_id = ?", (guild_id,))

    async def set_guild_model(self, guild_id: int, model: str | None) -> None:
        await self.db.execute(
            "INSERT INTO ai_guilds (guild_id, model) VALUES (?, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET model = excluded.model",
            (guild_id, model),
        )
