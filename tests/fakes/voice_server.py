"""A fake Discord voice server: the voice websocket and UDP endpoint, decrypting what it gets.

:class:`~tests.fakes.discord_server.FakeDiscord` answers a bot's voice join
(gateway op 4) with a VOICE_SERVER_UPDATE whose endpoint and token come from
here.  The real discord.py voice client then talks to this server as it would
to Discord's:

1. websocket ``/?v=8``: server HELLO (op 8); client IDENTIFY (op 0, token checked);
   server READY (op 2) with an SSRC, this UDP address and the one transport mode
   ``aead_xchacha20_poly1305_rtpsize``;
2. UDP IP discovery (74-byte request, 74-byte answer with the client's address);
3. SELECT_PROTOCOL (op 1); server SESSION_DESCRIPTION (op 4) with a random
   32-byte key and ``dave_protocol_version`` 0 (no DAVE end-to-end session:
   transport encryption only); heartbeats (op 3) get op 6; SPEAKING (op 5) is
   recorded;
4. every RTP packet is decrypted with the session key and its Opus frame
   recorded per guild (:meth:`FakeVoiceServer.frames`).

Failures to recover from: :meth:`FakeVoiceServer.drop` closes a guild's voice
websockets with a close code (4006 session no longer valid: identify again; 4015
voice server crashed: resume), :meth:`FakeVoiceServer.cut` loses the network (the
TCP connection goes without a close frame), and :meth:`FakeVoiceServer.refuse`
turns a guild's new connections away.  A voice server change is the fake
Discord's (:meth:`~tests.fakes.discord_server.FakeDiscord.change_voice_server`).

Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import array
import asyncio
import ctypes.util
import itertools
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import discord.opus
import nacl.exceptions
import nacl.secret
from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

Json = dict[str, Any]

MODE = "aead_xchacha20_poly1305_rtpsize"
SILENCE = b"\xf8\xff\xfe"
FRAME_SECONDS = 0.02
DISCOVERY_SIZE = 74
UDP_BUFFER = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VoiceFrame:
    """One decrypted RTP packet."""

    time: float
    """``time.monotonic()`` when it arrived."""
    sequence: int
    timestamp: int
    ssrc: int
    opus: bytes

    @property
    def silence(self) -> bool:
        return self.opus == SILENCE


@dataclass(eq=False)
class VoiceSession:
    """One voice join: issued with a token, bound to a websocket once identified."""

    guild_id: int
    user_id: int
    session_id: str
    token: str
    ssrc: int = 0
    key: bytes | None = None
    ws: web.WebSocketResponse | None = None
    transport: asyncio.BaseTransport | None = None
    speaking: list[int] = field(default_factory=list)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: FakeVoiceServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) == DISCOVERY_SIZE and data[:2] == b"\x00\x01":
            self._discover(data, addr)
        elif len(data) > 16:
            self.server._receive_rtp(data)

    def _discover(self, data: bytes, addr: tuple[str, int]) -> None:
        (ssrc,) = struct.unpack_from(">I", data, 4)
        reply = bytearray(DISCOVERY_SIZE)
        struct.pack_into(">HHI", reply, 0, 2, 70, ssrc)
        host = addr[0].encode()
        reply[8 : 8 + len(host)] = host
        struct.pack_into(">H", reply, DISCOVERY_SIZE - 2, addr[1])
        assert self.transport is not None
        self.transport.sendto(bytes(reply), addr)


class FakeVoiceServer:
    """The voice websocket + UDP endpoint (see the module docstring)."""

    def __init__(self) -> None:
        self._frames: dict[int, list[VoiceFrame]] = {}
        self._sessions: dict[str, VoiceSession] = {}
        self._by_ssrc: dict[int, VoiceSession] = {}
        self._next_ssrc = 1000
        self.undecryptable = 0
        """RTP packets that failed to decrypt (unknown SSRC or bad key)."""
        self.identifies = 0
        self.refused: set[int] = set()
        """Guilds whose identifies and resumes are closed with 4006."""
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self.port = 0
        self.udp_port = 0

    # Lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        # A big receive buffer: dozens of bots' streams arrive here, and a dropped IP
        # discovery packet is never resent by discord.py (the join then times out).
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        sock.bind(("127.0.0.1", 0))
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
        self._udp = transport
        self.udp_port = transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        for session in self._sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.close(code=1001)
        if self._udp is not None:
            self._udp.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeVoiceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def endpoint(self) -> str:
        """What VOICE_SERVER_UPDATE carries (discord.py adds ``wss://`` and ``/?v=8``)."""
        return f"127.0.0.1:{self.port}"

    # Used by FakeDiscord ----------------------------------------------------

    def issue_token(self, guild_id: int, user_id: int, session_id: str) -> str:
        token = secrets.token_hex(8)
        self._sessions[token] = VoiceSession(guild_id, user_id, session_id, token)
        return token

    async def drop(self, guild_id: int, *, code: int = 4014) -> None:
        """Close the guild's voice websockets with ``code`` (4014: a forced disconnect)."""
        for session in self._open(guild_id):
            assert session.ws is not None
            await session.ws.close(code=code)

    def cut(self, guild_id: int) -> None:
        """Lose the network: the guild's voice connections drop without a close frame."""
        for session in self._open(guild_id):
            assert session.transport is not None
            session.transport.abort()

    def refuse(self, guild_id: int, refused: bool = True) -> None:
        """Turn the guild's new voice connections away (or, with False, let them in)."""
        if refused:
            self.refused.add(guild_id)
        else:
            self.refused.discard(guild_id)

    def _open(self, guild_id: int) -> list[VoiceSession]:
        return [
            s
            for s in self._sessions.values()
            if s.guild_id == guild_id and s.ws is not None and not s.ws.closed
        ]

    # Inspecting -------------------------------------------------------------

    def frames(self, guild_id: int, *, audio_only: bool = True) -> list[VoiceFrame]:
        """Frames received for a guild in arrival order; without silence by default."""
        frames = self._frames.get(guild_id, [])
        return [f for f in frames if not f.silence] if audio_only else list(frames)

    def connected(self, guild_id: int) -> bool:
        return bool(self._open(guild_id))

    def speaking(self, guild_id: int) -> list[int]:
        return [
            flag for s in self._sessions.values() if s.guild_id == guild_id for flag in s.speaking
        ]

    # Websocket --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 8, "d": {"heartbeat_interval": 41250.0, "v": 8}}))
        session: VoiceSession | None = None
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            session = await self._receive(ws, session, frame.get("op"), frame.get("d") or {})
            if session is not None:
                session.transport = request.transport
        return ws

    async def _receive(
        self, ws: web.WebSocketResponse, session: VoiceSession | None, op: int | None, data: Json
    ) -> VoiceSession | None:
        if op == 0:
            return await self._identify(ws, data)
        if op == 7:
            return await self._resume(ws, data)
        if op == 3:
            await ws.send_str(json.dumps({"op": 6, "d": {"t": data.get("t")}}))
        elif op == 1 and session is not None:
            await self._select_protocol(ws, session, data)
        elif op == 5 and session is not None:
            session.speaking.append(int(data.get("speaking", 0)))
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> VoiceSession | None:
        session = self._sessions.get(str(data.get("token")))
        if session is not None and session.guild_id in self.refused:
            await ws.close(code=4006, message=b"Session no longer valid")
            return None
        if session is None or (
            str(data.get("server_id")) != str(session.guild_id)
            or str(data.get("user_id")) != str(session.user_id)
            or data.get("session_id") != session.session_id
        ):
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        self.identifies += 1
        session.ws = ws
        session.ssrc = self._next_ssrc
        self._next_ssrc += 1
        self._by_ssrc[session.ssrc] = session
        ready = {"ssrc": session.ssrc, "ip": "127.0.0.1", "port": self.udp_port, "modes": [MODE]}
        await ws.send_str(json.dumps({"op": 2, "d": {**ready, "heartbeat_interval": 41250}}))
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> VoiceSession | None:
        session = self._sessions.get(str(data.get("token")))
        if (
            session is None
            or data.get("session_id") != session.session_id
            or session.guild_id in self.refused
        ):
            await ws.close(code=4006, message=b"Session no longer valid")
            return None
        session.ws = ws
        await ws.send_str(json.dumps({"op": 9, "d": None}))
        return session

    async def _select_protocol(
        self, ws: web.WebSocketResponse, session: VoiceSession, data: Json
    ) -> None:
        mode = (data.get("data") or {}).get("mode")
        if mode != MODE:
            await ws.close(code=4016, message=b"Unknown encryption mode")
            return
        session.key = os.urandom(32)
        description = {
            "mode": MODE,
            "secret_key": list(session.key),
            "dave_protocol_version": 0,
            "audio_codec": "opus",
            "media_session_id": secrets.token_hex(8),
        }
        await ws.send_str(json.dumps({"op": 4, "d": description}))

    # RTP --------------------------------------------------------------------

    def _receive_rtp(self, packet: bytes) -> None:
        header, ciphertext, nonce = packet[:12], packet[12:-4], packet[-4:]
        (sequence, timestamp, ssrc) = struct.unpack_from(">HII", header, 2)
        session = self._by_ssrc.get(ssrc)
        if session is None or session.key is None:
            self.undecryptable += 1
            return
        try:
            opus = nacl.secret.Aead(session.key).decrypt(ciphertext, header, nonce + b"\0" * 20)
        except nacl.exceptions.CryptoError:
            self.undecryptable += 1
            return
        frame = VoiceFrame(time.monotonic(), sequence, timestamp, ssrc, opus)
        self._frames.setdefault(session.guild_id, []).append(frame)


def runs(frames: Iterable[VoiceFrame]) -> list[list[VoiceFrame]]:
    """Audio frames split where the bot sent silence (it does at each track's end and pause)."""
    found: list[list[VoiceFrame]] = [[]]
    for frame in frames:
        if frame.silence:
            if found[-1]:
                found.append([])
        else:
            found[-1].append(frame)
    return [run for run in found if run]


def tone_frequency(frames: Sequence[VoiceFrame]) -> float:
    """The pitch (Hz) of a pure tone in these frames: zero crossings of the decoded audio."""
    if not discord.opus.is_loaded():
        discord.opus.load_opus(ctypes.util.find_library("opus") or "libopus.so.0")
    decoder = discord.opus.Decoder()
    pcm = array.array("h", b"".join(decoder.decode(frame.opus) for frame in frames))
    left = pcm[0::2]
    crossings = sum(1 for a, b in itertools.pairwise(left) if (a < 0) != (b < 0))
    return crossings / 2 / (len(left) / discord.opus.Decoder.SAMPLING_RATE)
