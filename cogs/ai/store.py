"""Conversation history in the database, with each channel's summary of it (records in
`records`, the in-memory copy in `cache`).

With the preferences (`prefs.ChatPrefs`) and the rows by place (`chat_data.ChatData`:
deleting a channel's or guild's, and the turns of messages deleted or edited in Discord),
which it holds and shares its cache with, the only code that writes the AI chat tables;
long-term memory reads the log through `cogs.ai.log.ChatLogReader`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from cogs.ai.cache import TOPIC, ChatCache
from cogs.ai.chat_data import ChatData
from cogs.ai.prefs import ChatPrefs
from cogs.ai.records import TURN_COLUMNS, WRITING, ReplyContext, Tail, Turn, Unfinished
from utils.db import EVERYTHING, Connection, Database, storable
from utils.text import estimate_tokens

# An id of ai_messages that no turn will have (turns get larger ones), as a mark.
_RESERVE_ID = {
    "sqlite": "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'ai_messages' RETURNING seq",
    "postgresql": "SELECT nextval(pg_get_serial_sequence('ai_messages', 'id'))",
}


def _as_stored(turn: Turn) -> Turn:
    """`turn` as the database holds it (`storable` text), so that the turns given back and
    the cache hold the same as a restart reads."""
    content = storable(turn.content)
    return replace(
        turn,
        author_name=storable(turn.author_name),
        content=content,
        tokens=estimate_tokens(content),
    )


class ChatStore:
    """Reads and writes the conversation; knows nothing about Discord.

    With `prefs` the only code that writes the AI tables, so it keeps what every reply
    reads in a `ChatCache` for the `cached_channels` most recently used channels: the
    newest turns that fit `context_tokens`, the channel preferences and the guild
    preferences. Every write updates or drops the cached copy right after it commits;
    other processes hear of changed preferences and deletions (`changed`).
    """

    def __init__(
        self,
        db: Database,
        *,
        context_tokens: int = 6000,
        history_limit: int = 500,
        cached_channels: int = 1000,
    ) -> None:
        self.db = db
        self.context_tokens = context_tokens
        self.history_limit = history_limit
        self._cache = ChatCache(cached_channels)
        self.prefs = ChatPrefs(db, self._cache)
        self.data = ChatData(db, self._cache)

    # Conversation

    async def add_turns(
        self,
        guild_id: int | None,
        channel_id: int,
        turns: list[Turn],
        *,
        continues: int = 0,
        fresh_from: int | None = None,
        parts: Sequence[int] = (),
    ) -> list[Turn]:
        """Store turns and prune the channel to `history_limit` turns, atomically;
        return them as stored. A reply to a conversation whose newest turn was
        `continues` is not stored (nothing is: []) when none of it is left, since the
        channel was reset meanwhile: the reply would bring back what was forgotten.
        Nor is a reply to a context read when the channel's fresh-start mark was
        `fresh_from`, if it started afresh since: the reply belongs to what was left.
        `parts`: the earlier Discord messages of the last turn (a reply split over
        several; its `message_id` is the latest)."""
        try:
            async with self.db.transaction() as conn:
                if continues and not await conn.fetchval(
                    "SELECT 1 FROM ai_messages WHERE channel_id = ? AND id <= ? LIMIT 1",
                    (channel_id, continues),
                ):
                    return []
                if fresh_from is not None and await conn.fetchval(
                    "SELECT 1 FROM ai_channels WHERE channel_id = ? AND context_from > ?",
                    (channel_id, fresh_from),
                ):
                    return []
                stored = [await self._insert(conn, guild_id, channel_id, t) for t in turns]
                if parts:
                    await self._add_parts(conn, stored[-1].id, parts)
                pruned = await conn.fetchall(
                    "DELETE FROM ai_messages WHERE channel_id = ? AND id <= ("
                    "SELECT id FROM ai_messages WHERE channel_id = ? ORDER BY id DESC "
                    "LIMIT 1 OFFSET ?) RETURNING id",
                    (channel_id, channel_id, self.history_limit),
                )
        except BaseException:
            self._cache.tails.pop(channel_id, None)  # it may have committed: read it afresh
            raise
        finally:
            self._cache.writes += 1
        if tail := self._cache.tails.get(channel_id):
            for turn in stored:
                tail.append(turn, self.context_tokens)
            if pruned:
                tail.drop_upto(max(row[0] for row in pruned))
        return stored

    async def rewrite_turn(
        self,
        channel_id: int,
        turn: Turn,
        content: str,
        incomplete: str | None,
        message_id: int | None,
        parts: Sequence[int] = (),
    ) -> Turn:
        """Replace a stored turn's text, incomplete mark and latest Discord message (a
        reply as it grows); `parts`: the reply's earlier messages not stored yet (it
        continued in a new message)."""
        new = _as_stored(
            replace(turn, content=content, incomplete=incomplete, message_id=message_id)
        )
        update = (
            "UPDATE ai_messages SET content = ?, tokens = ?, incomplete = ?, message_id = ? "
            "WHERE id = ? AND channel_id = ?",
            (new.content, new.tokens, new.incomplete, new.message_id, new.id, channel_id),
        )
        with self._cache.extending(channel_id):
            if not parts:  # one statement: no transaction to open and commit
                await self.db.execute(*update)
            else:
                async with self.db.transaction() as conn:
                    await conn.execute(*update)
                    await self._add_parts(conn, new.id, parts)
        self._cache.rewritten(channel_id, turn, new, self.context_tokens)
        return new

    async def replace_message(self, channel_id: int, old_id: int, new_id: int) -> None:
        """A reply's Discord message `old_id` was sent again as `new_id` (a character's,
        whose webhook went meanwhile): the history follows it there, so that deleting the
        old one does not take the reply out of the history."""
        with self._cache.writing((self._cache.tails, channel_id)):
            async with self.db.transaction() as conn:
                await conn.execute(
                    "UPDATE ai_messages SET message_id = ? WHERE channel_id = ? AND message_id = ?",
                    (new_id, channel_id, old_id),
                )
                await conn.execute(
                    "UPDATE ai_reply_parts SET message_id = ? WHERE message_id = ?",
                    (new_id, old_id),
                )

    @staticmethod
    async def _add_parts(conn: Connection, turn_id: int, parts: Sequence[int]) -> None:
        """Note earlier messages of a reply, unless the reply is gone (deleted meanwhile)."""
        if not parts:
            return
        await conn.executemany(
            "INSERT INTO ai_reply_parts (message_id, turn_id) "
            "SELECT ?, id FROM ai_messages WHERE id = ? ON CONFLICT DO NOTHING",
            [(message_id, turn_id) for message_id in parts],
        )

    @staticmethod
    async def _insert(conn: Connection, guild_id: int | None, channel_id: int, turn: Turn) -> Turn:
        stored = replace(_as_stored(turn), created_at=time.time())
        turn_id = await conn.fetchval(
            "INSERT INTO ai_messages (guild_id, channel_id, message_id, author_id, author_name, "
            "role, content, tokens, created_at, incomplete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (
                guild_id,
                channel_id,
                stored.message_id,
                stored.author_id,
                stored.author_name,
                stored.role,
                stored.content,
                stored.tokens,
                stored.created_at,
                stored.incomplete,
            ),
        )
        return replace(stored, id=turn_id)

    async def recent_turns(
        self, channel_id: int, after_id: int, budget: int
    ) -> tuple[list[Turn], bool]:
        """The newest turns after `after_id` that fit `budget` tokens (at most
        `context_tokens`), oldest first, and whether older unsummarised turns were
        left out."""
        tail = self._cache.get(self._cache.tails, channel_id) or await self._load_tail(channel_id)
        picked: list[Turn] = []
        used = 0
        for turn in reversed(tail.turns):
            if turn.id <= after_id:
                return picked[::-1], False
            if used + turn.tokens > budget:
                return picked[::-1], True
            used += turn.tokens
            picked.append(turn)
        return picked[::-1], tail.older_id > after_id

    async def context(
        self, guild_id: int | None, channel_id: int, *, reserve: int = 0
    ) -> ReplyContext:
        """What a reply needs: the channel's preferences, the guild's model and the newest
        unsummarised turns that fit `context_tokens` less the summary and `reserve` tokens
        (e.g. the new message). From the cache when it has them: no database read."""
        prefs = await self.prefs.channel(channel_id)
        budget = self.context_tokens - estimate_tokens(prefs.summary or "") - reserve
        turns, overflow = await self.recent_turns(channel_id, prefs.read_after, max(budget, 0))
        return ReplyContext(prefs, turns, overflow, (await self.prefs.guild(guild_id)).model)

    async def _load_tail(self, channel_id: int) -> Tail:
        since = self._cache.writes
        rows = await self.db.fetchall(
            f"SELECT {TURN_COLUMNS} FROM ai_messages WHERE channel_id = ? ORDER BY id DESC",
            (channel_id,),
        )
        tail = Tail()
        for row in rows:
            if tail.tokens + row["tokens"] > self.context_tokens:
                tail.older_id = row["id"]
                break
            tail.turns.appendleft(Turn(*row))
            tail.tokens += row["tokens"]
        return self._cache.remember(self._cache.tails, channel_id, tail, since)

    async def turns(self, channel_id: int, *, after_id: int = 0) -> list[Turn]:
        rows = await self.db.fetchall(
            f"SELECT {TURN_COLUMNS} FROM ai_messages WHERE channel_id = ? AND id > ? ORDER BY id",
            (channel_id, after_id),
        )
        return [Turn(**dict(row)) for row in rows]

    async def unfinished(self, limit: int, mine: Callable[[int | None], bool]) -> list[Unfinished]:
        """The oldest `limit` replies still marked as being written (WRITING) in the
        guilds `mine` accepts (those of this process's shards)."""
        found: list[Unfinished] = []
        after = 0
        while len(found) < limit and (
            rows := await self.db.fetchall(
                "SELECT id, channel_id, message_id, guild_id FROM ai_messages "
                f"WHERE incomplete = '{WRITING}' AND id > ? "  # the partial index's term
                "ORDER BY id LIMIT ?",
                (after, limit),
            )
        ):
            replies = [Unfinished(*row) for row in rows]
            found += [reply for reply in replies if mine(reply.guild_id)]
            after = replies[-1].turn_id
        return found[:limit]

    async def mark_unfinished(self, reply: Unfinished, incomplete: str | None) -> None:
        """Mark why a reply found still being written stopped, or None: it was shown whole
        (if it is still marked as being written)."""
        with self._cache.writing((self._cache.tails, reply.channel_id)):
            await self.db.execute(
                "UPDATE ai_messages SET incomplete = ? WHERE id = ? AND incomplete = ?",
                (incomplete, reply.turn_id, WRITING),
            )

    async def count(self, channel_id: int) -> int:
        return await self.db.fetchval(
            "SELECT count(*) FROM ai_messages WHERE channel_id = ?", (channel_id,)
        )

    async def reset(self, channel_id: int) -> int:
        """Forget a channel's conversation and summary (its preferences stay)."""
        with self._cache.writing((self._cache.tails, channel_id), (self._cache.prefs, channel_id)):
            async with self.db.transaction() as conn:
                deleted = await conn.execute(
                    "DELETE FROM ai_messages WHERE channel_id = ?", (channel_id,)
                )
                await conn.execute(
                    "UPDATE ai_channels SET summary = NULL, summary_upto = 0 WHERE channel_id = ?",
                    (channel_id,),
                )
        await self.db.notify(TOPIC, channel_id)
        return deleted

    async def start_afresh(self, guild_id: int | None, channel_id: int) -> None:
        """Later replies in the channel read nothing said there so far, nor its summary (a
        roleplay scene began or ended there), and a reply being written meanwhile is not
        stored (`add_turns`); what was said stays stored and exportable. The mark is an id
        the log reserves, above every id given so far: each fresh start moves it."""
        with self._cache.writing((self._cache.prefs, channel_id)):
            async with self.db.transaction() as conn:
                mark = await conn.fetchval(_RESERVE_ID[self.db.backend])
                if mark is None:
                    return  # no turn was ever stored (SQLite): nothing to leave behind
                await conn.execute(
                    "INSERT INTO ai_channels (channel_id, guild_id, context_from) VALUES (?, ?, ?) "
                    "ON CONFLICT (channel_id) DO UPDATE SET context_from = excluded.context_from, "
                    "summary = NULL, summary_upto = 0",
                    (channel_id, guild_id, mark),
                )
        await self.db.notify(TOPIC, channel_id)

    async def save_summary(
        self, guild_id: int | None, channel_id: int, summary: str, folded: list[Turn], since: int
    ) -> bool:
        """Store `summary` of `folded` (the oldest turns after the summary mark `since`),
        unless the conversation changed meanwhile (a reset, a message deleted or edited,
        another summary, a fresh start): then nothing is stored (False), lest it bring back
        what is gone."""
        with self._cache.writing((self._cache.prefs, channel_id)):
            async with self.db.transaction() as conn:
                now = await conn.fetchall(
                    "SELECT id, content FROM ai_messages "
                    "WHERE channel_id = ? AND id BETWEEN ? AND ? ORDER BY id",
                    (channel_id, folded[0].id, folded[-1].id),
                )
                if [(row[0], row[1]) for row in now] != [(t.id, t.content) for t in folded]:
                    return False
                await conn.execute(
                    "INSERT INTO ai_channels (channel_id, guild_id) VALUES (?, ?) "
                    "ON CONFLICT (channel_id) DO NOTHING",
                    (channel_id, guild_id),
                )
                saved = await conn.execute(
                    "UPDATE ai_channels SET summary = ?, summary_upto = ? "
                    "WHERE channel_id = ? AND summary_upto = ? AND context_from < ?",
                    (summary, folded[-1].id, channel_id, since, folded[0].id),
                )
        await self.db.notify(TOPIC, channel_id)
        return bool(saved)

    # Other processes' writes

    async def changed(self, topic: str, key: str) -> None:
        """Another process wrote: forget the copies of the channel or guild it names (of
        all after EVERYTHING), then read auto-respond afresh."""
        if topic in (TOPIC, EVERYTHING):
            channel_id = None if key == EVERYTHING else int(key)
            self._cache.forget(channel_id)
            await self.prefs.load_autorespond(channel_id)
