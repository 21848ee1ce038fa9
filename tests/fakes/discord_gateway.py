"""The fake Discord's gateway websocket: one session per shard, as Discord runs them.

A bot IDENTIFYs once per shard with ``shard: [id, count]`` and gets a session of its
own: a session id, rising sequence numbers, its heartbeats, and a log of every
dispatch (index = seq - 1) so a RESUME replays what the client missed.  READY lists
the guilds of that shard only, and every guild event goes to the session of shard
``(guild_id >> 22) % count``; DMs and other events without a guild go to shard 0.
A bot without sharding identifies as ``[0, 1]`` and gets everything.

Sessions belong to shards, not to sockets: a shard whose process died keeps its
session (and collects its dispatches) until the shard IDENTIFYs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from tests.fakes.discord_models import Json

if TYPE_CHECKING:
    from tests.fakes.discord_server import FakeDiscord

log = logging.getLogger(__name__)

_GUILD_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})
"""Events whose ``id`` is the guild's (the others carry ``guild_id``)."""


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that carries a guild's events (Discord's sharding formula)."""
    return (guild_id >> 22) % shard_count


def _guild_of(event: str, data: Json) -> int | None:
    if data.get("guild_id") is not None:
        return int(data["guild_id"])
    if event in _GUILD_EVENTS:
        return int(data["id"])
    return None


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    session: GatewaySession | None = None
    """The session this socket identified or resumed, once it has."""
    sent: int = 0
    """Sequence number of the last dispatch sent on this socket."""


class GatewaySession:
    """One shard's session: what it was sent (for RESUME) and the socket serving it."""

    def __init__(self, shard_id: int, shard_count: int, intents: int, token: str) -> None:
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.intents = intents
        self.token = token
        """The token the shard identified with: which bot process holds the session."""
        self.session_id = uuid.uuid4().hex
        self.resumes = 0
        self.log: list[Json] = []
        self.conn: _Connection | None = None
        self._send_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<GatewaySession shard={self.shard_id}/{self.shard_count} live={self.connected}>"

    @property
    def connected(self) -> bool:
        return self.conn is not None

    def carries(self, guild_id: int | None) -> bool:
        """Whether events of ``guild_id`` (None: no guild, e.g. a DM) come to this shard."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_of(guild_id, self.shard_count) == self.shard_id

    def append(self, event: str, data: Json) -> None:
        self.log.append({"op": 0, "t": event, "s": len(self.log) + 1, "d": data})

    async def flush(self, send: Send) -> None:
        """Send every dispatch the live connection has not had yet, in order."""
        async with self._send_lock:
            conn = self.conn
            while conn is not None and conn is self.conn and conn.sent < len(self.log):
                if not await send(conn, self.log[conn.sent]):
                    return
                conn.sent += 1


Send = Callable[[_Connection, Json], Awaitable[bool]]


class Gateway:
    """The gateway websocket of a :class:`FakeDiscord`: sockets, sessions, routing."""

    HEARTBEAT_INTERVAL_MS = 41_250

    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake
        self.sessions: dict[int, GatewaySession] = {}
        """The current session of each shard that identified."""
        self.ready = asyncio.Event()
        """Set once the latest IDENTIFY got its READY and GUILD_CREATEs."""
        self.identifies = 0
        self.voice_state_updates: list[Json] = []
        self.outages: set[int] = set()
        """Guilds in an outage: unavailable in READY, no GUILD_CREATE."""
        self.intents = 0
        """The intents of the latest IDENTIFY (the bot's processes all send the same)."""
        self.refusal: int | None = None
        """A close code every IDENTIFY and RESUME is answered with (4011: sharding required)."""
        self._sockets: set[web.WebSocketResponse] = set()
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._flushes: set[asyncio.Task[None]] = set()

    @property
    def resumes(self) -> int:
        return sum(session.resumes for session in self.sessions.values())

    @property
    def sockets(self) -> int:
        """Gateway sockets open now (identified or not)."""
        return len(self._sockets)

    def has_intent(self, intent: int) -> bool:
        return bool(self.intents & intent)

    # Sending ----------------------------------------------------------------

    def emit(self, event: str, data: Json, *, intent: int | None = None) -> None:
        """Queue a dispatch for the shard it belongs to (dropped when that shard has no
        session, or its session lacks ``intent``).

        Delivery happens in a task when a loop is running, else at the next
        :meth:`flush` (every async method of :class:`FakeDiscord` flushes).
        """
        guild_id = _guild_of(event, data)
        targets = [
            session
            for session in self.sessions.values()
            if session.carries(guild_id) and (intent is None or session.intents & intent)
        ]
        for session in targets:
            session.append(event, data)
        if targets:
            self._flush_soon()

    async def dispatch(self, event: str, data: Json, *, intent: int | None = None) -> None:
        self.emit(event, data, intent=intent)
        await self.flush()

    async def flush(self) -> None:
        for session in list(self.sessions.values()):
            await session.flush(self._send)

    async def _send(self, conn: _Connection, frame: Json) -> bool:
        """Send one frame; False (and the socket given up) if the peer is gone."""
        try:
            await conn.ws.send_str(json.dumps(frame))
        except ConnectionResetError:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            return False
        return True

    def _flush_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    # Connections ------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        conn = _Connection(ws)
        try:
            await self._accepting.wait()
            hello = {"op": 10, "d": {"heartbeat_interval": self.HEARTBEAT_INTERVAL_MS}}
            await self._send(conn, hello)
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._receive(conn, json.loads(message.data))
        finally:
            self._sockets.discard(ws)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
        return ws

    async def _receive(self, conn: _Connection, frame: Json) -> None:
        op, data = frame.get("op"), frame.get("d")
        session = conn.session
        if op == 1:
            await self._send(conn, {"op": 11})
        elif op in (2, 6) and self.refusal is not None:
            if op == 2:
                self.identifies += 1
            await conn.ws.close(code=self.refusal)
        elif op == 2:
            await self._identify(conn, data)
        elif op == 6:
            await self._resume(conn, data)
        elif op == 8 and session is not None:
            await self._request_members(session, data)
        elif op == 4 and session is not None:
            self.voice_state_updates.append(data)
            await self._fake._own_voice_state(data, session.session_id)
        elif op != 3:  # op 3 (presence update) needs no answer
            log.warning("fake gateway: unhandled op %s: %s", op, data)

    async def _identify(self, conn: _Connection, data: Json) -> None:
        self.identifies += 1
        self.ready.clear()
        self.intents = data.get("intents", 0)
        shard_id, shard_count = data.get("shard") or [0, 1]
        session = GatewaySession(shard_id, shard_count, self.intents, data.get("token", ""))
        self.sessions[shard_id] = session  # a new IDENTIFY ends the shard's old session
        session.conn, conn.session = conn, session
        fake = self._fake
        guilds = [
            guild
            for guild in fake.guilds.values()
            if session.carries(guild.id) and guild.id not in self.outages
        ]
        session.append("READY", fake._ready_payload(session.session_id, [shard_id, shard_count]))
        for guild in guilds:
            session.append("GUILD_CREATE", fake._guild_create_payload(guild))
        await session.flush(self._send)
        self.ready.set()

    async def _resume(self, conn: _Connection, data: Json) -> None:
        session = next(
            (s for s in self.sessions.values() if s.session_id == data.get("session_id")), None
        )
        if session is None or data.get("seq") is None:
            await self._send(conn, {"op": 9, "d": False})
            return
        session.resumes += 1
        conn.sent = data["seq"]
        session.conn, conn.session = conn, session
        await session.flush(self._send)  # replay what the client missed
        session.append("RESUMED", {})
        await session.flush(self._send)

    async def _request_members(self, session: GatewaySession, data: Json) -> None:
        guild = self._fake.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        wanted = {int(user_id) for user_id in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        members = [
            member
            for member in guild.members.values()
            if (member.user.id in wanted if wanted else member.user.name.lower().startswith(query))
        ]
        if data.get("limit"):
            members = members[: data["limit"]]
        chunk = {
            "guild_id": str(guild.id),
            "members": [member.to_payload() for member in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        session.append("GUILD_MEMBERS_CHUNK", chunk)
        await session.flush(self._send)

    # Breaking connections ---------------------------------------------------

    async def drop(self, code: int, shard: int) -> None:
        session = self.sessions.get(shard)
        conn = session.conn if session is not None else None
        if session is None or conn is None:
            raise AssertionError(f"the bot is not connected to the gateway on shard {shard}")
        session.conn = None
        await conn.ws.close(code=code)

    async def request_reconnect(self, shard: int) -> None:
        """Discord asks a shard to reconnect (op 7): it closes its socket and RESUMEs."""
        session = self.sessions.get(shard)
        if session is None or session.conn is None:
            raise AssertionError(f"the bot is not connected to the gateway on shard {shard}")
        await self._send(session.conn, {"op": 7, "d": None})

    async def invalidate(self, shard: int) -> None:
        """Discord ends a shard's session (op 9, not resumable): the shard IDENTIFYs
        again and gets a fresh READY; what happened in between is never replayed."""
        session = self.sessions.pop(shard, None)
        if session is None:
            raise AssertionError(f"shard {shard} has no session")
        conn, session.conn = session.conn, None
        if conn is not None:
            await self._send(conn, {"op": 9, "d": False})

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """New sockets get no HELLO (so no session) until the block exits."""
        self._accepting.clear()
        try:
            yield
        finally:
            self._accepting.set()

    @contextlib.asynccontextmanager
    async def disconnected(self, code: int, shard: int) -> AsyncIterator[None]:
        async with self.holding():
            await self.drop(code, shard)
            yield

    async def close(self) -> None:
        self._accepting.set()
        for ws in list(self._sockets):
            await ws.close(code=1001)
        for task in list(self._flushes):
            task.cancel()
