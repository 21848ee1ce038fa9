"""A fake Discord (REST API + gateway websocket) that the real discord.py client talks to.

Start a :class:`FakeDiscord`, call :meth:`FakeDiscord.patch_discord` and run an
unmodified ``commands.Bot`` against it.  Tests build the world (users, guilds,
channels), act as users (:meth:`~FakeDiscord.send_message`,
:meth:`~FakeDiscord.invoke_slash`, :meth:`~FakeDiscord.click_button`), break the
connection (:meth:`~FakeDiscord.drop_connection`) and then inspect what the bot did:
``messages``, ``interactions``, ``requests``, ``typing``.

Like Discord, the fake honours the intents sent in IDENTIFY: no MESSAGE_CREATE
without the messages intents, blank content without ``message_content`` (unless the
bot is mentioned or it is a DM), GUILD_MEMBER_ADD only with ``members``, and
GUILD_CREATE lists only the bot as member unless ``presences`` is on (so a bot sees
other members through messages and interactions, or by chunking: op 8 is answered
with one GUILD_MEMBERS_CHUNK).  Messages the bot creates are dispatched back to it
(MESSAGE_CREATE/UPDATE/DELETE), and the first follow-up after a deferral fills in
the "thinking" message instead of posting a new one, as on Discord.

Voice: with a :class:`~tests.fakes.voice_server.FakeVoiceServer` attached
(:meth:`~FakeDiscord.attach_voice`), the bot's op 4 is answered with
VOICE_STATE_UPDATE and a VOICE_SERVER_UPDATE pointing at it.  Tests put people
into voice channels (:meth:`~FakeDiscord.join_voice`), act as moderators
(:meth:`~FakeDiscord.move_member_voice`, :meth:`~FakeDiscord.disconnect_voice`)
and read what the bot played (:meth:`~FakeDiscord.voice_frames`).  Voice states
reach the bot through GUILD_CREATE ``voice_states`` (with those members) and
VOICE_STATE_UPDATE, with the ``voice_states`` intent.  Who joins a Stage channel
(:meth:`FakeGuild.add_stage_channel`) is in its audience (``suppress``); the bot
becomes a speaker (needs Mute Members) or asks to speak (needs Request to Speak)
with PATCH /guilds/{id}/voice-states/@me (:meth:`~FakeDiscord.stage_state`).

Server administration (channels, threads, pins, roles) is served by
:class:`~tests.fakes.discord_admin.AdminRoutes`; every request's audit-log reason
is on its :class:`RequestRecord`.

Shards: ``FakeDiscord(shards=n)`` recommends n shards in GET /gateway/bot and spreads
new guilds over them (``add_guild(shard=...)`` picks one); each shard that IDENTIFYs
gets its own session and only its guilds' events (:mod:`tests.fakes.discord_gateway`).
Requests and the messages they create record the bot token they were made with, which
tells two bot processes apart when each is given its own.

Slowmode (a channel's ``rate_limit_per_user``) holds the bot's own messages too, as on
Discord, unless it may manage messages or the channel (or bypass slowmode): one it posts
too soon after its last there is answered 429, code 20016, with ``retry_after``.

Everything binds to 127.0.0.1.  The gateway sends plain text frames whatever the
``compress`` query parameter says (discord.py only inflates binary frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import discord.gateway
import discord.http
import yarl
from aiohttp import web

from tests.fakes.discord_admin import AdminRoutes
from tests.fakes.discord_gateway import Gateway, GatewaySession, shard_of
from tests.fakes.discord_guild import STAGE_CHANNEL, FakeGuild
from tests.fakes.discord_models import (
    ADMINISTRATOR,
    DEFAULT_PERMS,
    DM_CHANNEL,
    DM_MESSAGES_INTENT,
    EPHEMERAL,
    EVERYONE_PERMS,
    GUILD_MESSAGES_INTENT,
    LOADING,
    MESSAGE_CONTENT_INTENT,
    PRESENCES_INTENT,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    FakeWebhook,
    Json,
    RequestRecord,
    Snowflakes,
    UploadedFile,
    iso,
    now,
)
from tests.fakes.discord_rest import (
    BODY,
    ApiError,
    Body,
    Handler,
    add_rate_limit_headers,
    bot_token,
    invalid_form_body,
    json_response,
    missing_permissions,
    no_content,
    path_id,
    request_body,
)
from tests.fakes.discord_webhooks import WebhookRoutes
from tests.fakes.voice_server import FakeVoiceServer, VoiceFrame

__all__ = [
    "DEFAULT_PERMS",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "FakeWebhook",
    "RequestRecord",
]

log = logging.getLogger(__name__)

API = "/api/v10"
T = TypeVar("T")

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_TRUE = frozenset({"1", "true", "True"})
READ_MESSAGE_HISTORY = discord.Permissions(read_message_history=True).value
ATTACH_FILES = discord.Permissions(attach_files=True).value
EMBED_LINKS = discord.Permissions(embed_links=True).value
# Who has one of these is not held by slowmode (bypass_slowmode: Discord's newer one).
SLOWMODE_EXEMPT = discord.Permissions(
    manage_messages=True, manage_channels=True, bypass_slowmode=True
).value
MANAGE_THREADS = discord.Permissions(manage_threads=True).value  # spares in threads
SLOWMODE_CODE = 20016

# Interaction and callback types (https://discord.com/developers/docs/interactions)
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
APPLICATION_COMMAND_AUTOCOMPLETE = 4
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
SUBCOMMAND = 1
SUBCOMMAND_GROUP = 2
MESSAGE_TYPE_REPLY, MESSAGE_TYPE_COMMAND = 19, 20
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
APPLICATION_FLAGS = (1 << 13) | (1 << 15) | (1 << 19)  # presence/members/content "limited"
VOICE_STATES_INTENT = discord.Intents(voice_states=True).value


def slowmode_refusal(wait: float, code: int = SLOWMODE_CODE) -> web.Response:
    """Discord's answer to a message slowmode holds: a 429 (code 20016) that discord.py
    treats as a rate limit (the ``Via`` header), waiting ``retry_after`` to send again
    (code 0: a route's rate limit, as for a channel renamed twice in 10 minutes)."""
    body = {
        "message": "You are being rate limited.",
        "retry_after": round(wait, 3),
        "global": False,
        "code": code,
    }
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(math.ceil(wait)),
        "X-RateLimit-Scope": "user",
    }
    return web.Response(
        body=json.dumps(body).encode(), status=429, headers=headers, content_type="application/json"
    )


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """A fake Discord API and gateway on 127.0.0.1 (see the module docstring)."""

    def __init__(self, *, shards: int = 1) -> None:
        self.shards = shards
        """The shard count GET /gateway/bot recommends, and that new guilds spread over."""
        self._new_id = Snowflakes()
        self.bot_user = FakeUser(self._new_id(), "TestBot", bot=True)
        self.application_id = self.bot_user.id  # the same, as for every modern bot
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user}
        self.owner = self.add_user("owner")
        self.guilds: dict[int, FakeGuild] = {}
        self.dm_channels: dict[int, FakeChannel] = {}
        self.webhooks: dict[int, FakeWebhook] = {}
        self.commands: dict[int | None, list[Json]] = {}
        """Application commands synced by the bot, by guild id (``None``: global)."""
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: list[FakeInteraction] = []
        self.requests: list[RequestRecord] = []
        self.fail_after: dict[tuple[str, str], int] = {}
        """(method, path below ``/api/v10``) -> status: the next such request is carried
        out, then answered with that status (Discord failing after the change)."""
        self.dropping: set[tuple[str, str]] = set()
        """(method, path below ``/api/v10``) of requests whose connection is aborted
        unanswered (a connection reset), while they are in the set."""
        self.holding: dict[tuple[str, str], asyncio.Event] = {}
        """(method, path below ``/api/v10``) -> event: such a request is recorded, then
        waits unanswered until the event is set (Discord slow to answer)."""
        self.rate_limited: dict[tuple[str, str], float] = {}
        """(method, path below ``/api/v10``) -> seconds: such a request is recorded, then
        answered 429 with that ``retry_after`` (a route's rate limit), while in the dict."""
        self.typing: list[tuple[int, float]] = []
        self._bot_posted: dict[int, float] = {}
        """channel id -> when the bot last posted there (what slowmode counts from)."""
        self._attachments: dict[int, FakeAttachment] = {}
        self._gateway = Gateway(self)
        self._guilds_made = 0
        self._admin = AdminRoutes(self)
        self.webhook_routes = WebhookRoutes(self)
        """Channel webhooks; tests act through its ``add``, ``delete`` and ``rate_limit``."""
        self.ready = self._gateway.ready
        self.voice_state_updates = self._gateway.voice_state_updates
        """Every op 4 (voice state update) the bot sent, in order."""
        self.voice: FakeVoiceServer | None = None
        self._voice_states: dict[int, dict[int, int]] = {}
        """guild id -> user id -> voice channel id."""
        self._stage_states: dict[tuple[int, int], Json] = {}
        """(guild id, user id) -> ``suppress`` and ``request_to_speak_timestamp`` of who is
        in a Stage channel."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Lifecycle --------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        for method, path, handler in self._routes():
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def patch_discord(self) -> Callable[[], None]:
        """Point discord.py's REST base and default gateway here; returns the undo."""
        assert self.port, "start() the fake before patching discord.py"
        route, websocket = discord.http.Route, discord.gateway.DiscordWebSocket
        old = route.BASE, websocket.DEFAULT_GATEWAY
        route.BASE = self.url + API
        websocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{self.port}/gateway")

        def undo() -> None:
            route.BASE, websocket.DEFAULT_GATEWAY = old

        return undo

    # Building the world -----------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False) -> FakeUser:
        user = FakeUser(self._new_id(), name, bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self, name: str = "Test Guild", *, owner: FakeUser | None = None, shard: int | None = None
    ) -> FakeGuild:
        """A guild with the owner and the bot (administrator) as members, on ``shard`` of
        :attr:`shards` (by default the next one in turn, so guilds spread over shards)."""
        owner = owner or self.owner
        shard = self._guilds_made % self.shards if shard is None else shard
        assert 0 <= shard < self.shards, f"shard {shard} is not one of the fake's {self.shards}"
        self._guilds_made += 1
        guild_id = self._new_id.on_shard(shard, self.shards)
        guild = FakeGuild(guild_id, name, owner.id, self._new_id, bot_id=self.bot_user.id)
        guild.add_member(self.bot_user, permissions=ADMINISTRATOR, managed=True)
        guild.add_member(owner)
        self.guilds[guild.id] = guild
        guild.go_live(self._gateway.emit)
        self._gateway.emit("GUILD_CREATE", self._guild_create_payload(guild))
        return guild

    def remove_guild(self, guild: FakeGuild) -> None:
        """The bot is kicked from (or leaves) ``guild``: GUILD_DELETE without ``unavailable``."""
        del self.guilds[guild.id]
        guild.go_live(lambda *_, **__: None)
        self._gateway.emit("GUILD_DELETE", {"id": str(guild.id)})

    def rejoin_guild(self, guild: FakeGuild) -> None:
        """The bot is added back to a guild it was removed from."""
        self.guilds[guild.id] = guild
        guild.go_live(self._gateway.emit)
        payload = self._guild_create_payload(guild)
        del payload["unavailable"]  # as Discord sends a join (False means "back from an outage")
        self._gateway.emit("GUILD_CREATE", payload)

    def start_outage(self, guild: FakeGuild) -> None:
        """Discord loses ``guild`` for a while: GUILD_DELETE with ``unavailable``; a READY
        meanwhile lists it as unavailable, with no GUILD_CREATE after."""
        self._gateway.outages.add(guild.id)
        self._gateway.emit("GUILD_DELETE", {"id": str(guild.id), "unavailable": True})

    def end_outage(self, guild: FakeGuild) -> None:
        """``guild`` is back: GUILD_CREATE with ``unavailable: false``."""
        self._gateway.outages.discard(guild.id)
        self._gateway.emit("GUILD_CREATE", self._guild_create_payload(guild))

    def delete_thread(self, guild: FakeGuild, thread_id: int, parent: FakeChannel) -> None:
        """A thread of ``parent`` is deleted (made by ``guild.add_thread`` or not)."""
        guild.threads.pop(thread_id, None)
        self._gateway.emit(
            "THREAD_DELETE",
            {
                "id": str(thread_id),
                "guild_id": str(guild.id),
                "parent_id": str(parent.id),
                "type": 11,
            },
        )

    def open_dm(self, user: FakeUser) -> FakeChannel:
        for channel in self.dm_channels.values():
            if channel.recipient is user:
                return channel
        channel = FakeChannel(self._new_id(), user.name, DM_CHANNEL, recipient=user)
        self.dm_channels[channel.id] = channel
        return channel

    # Acting as users --------------------------------------------------------

    async def send_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        content: str,
        *,
        attachments: list[Json] | None = None,
        reference: FakeMessage | None = None,
        webhook_id: int | None = None,
        stickers: list[str] | None = None,
        type: int = 0,
        forwarded: FakeMessage | None = None,
        poll: tuple[str, list[str]] | None = None,
    ) -> FakeMessage:
        """Post a message as ``author`` (attachments: ``{filename, content_type, data}``;
        stickers: their names; type: a system message's, e.g. 18 "started a thread";
        forwarded: the message it forwards; poll: its question and answers)."""
        if webhook_id is None:
            self._require_member(channel, author)
        message = FakeMessage(
            self._new_id(),
            channel.id,
            channel.guild_id,
            author,
            content,
            from_bot=False,
            attachments=[
                self._new_attachment(
                    UploadedFile(item["filename"], item["data"], item.get("content_type"))
                )
                for item in attachments or []
            ],
            reference=reference.id if reference else None,
            webhook_id=webhook_id,
            stickers=[
                {"id": str(self._new_id()), "name": name, "format_type": 1}
                for name in stickers or []
            ],
            type=type,
            forwarded=[{"message": self._snapshot_payload(forwarded)}] if forwarded else [],
            poll=self._poll_payload(*poll) if poll else None,
        )
        self._publish(message)
        await self._gateway.flush()
        return message

    def _snapshot_payload(self, message: FakeMessage) -> Json:
        keys = ("type", "content", "embeds", "attachments", "timestamp", "edited_timestamp")
        payload = self._message_payload(message, nested=True)
        return {
            **{key: payload[key] for key in keys},
            "flags": payload["flags"],
            "mentions": [],
            "mention_roles": [],
            "sticker_items": payload["sticker_items"],
        }

    @staticmethod
    def _poll_payload(question: str, answers: list[str]) -> Json:
        return {
            "question": {"text": question},
            "answers": [
                {"answer_id": i, "poll_media": {"text": text}}
                for i, text in enumerate(answers, start=1)
            ],
            "expiry": iso(now() + dt.timedelta(hours=24)),
            "allow_multiselect": False,
            "layout_type": 1,
        }

    async def invoke_slash(
        self,
        channel: FakeChannel,
        user: FakeUser,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | list[str] | None = None,
        focused: str | None = None,
    ) -> FakeInteraction:
        """Run ``/name [subcommand...] options`` as ``user``, typed by the synced schema.

        Option values: plain values, :class:`FakeUser`, :class:`FakeChannel`,
        :class:`FakeRole`, or ``{filename, content_type, data}`` for attachments.
        ``focused``: the option being typed; the interaction is then an autocomplete
        request, answered with ``{"type": 8, "data": {"choices": [...]}}``.
        """
        command, scope = self._synced_command(name, channel.guild_id)
        path = [subcommand] if isinstance(subcommand, str) else list(subcommand or [])
        data: Json = {"id": command["id"], "name": name, "type": 1}
        if scope is not None:
            data["guild_id"] = str(scope)
        resolved: Json = {}
        built = self._command_options(
            command.get("options", []), path, options or {}, resolved, channel
        )
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if focused is None:
            return await self._interact(channel, user, APPLICATION_COMMAND, data)
        leaves = built
        while leaves and leaves[0]["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP):
            leaves = leaves[0]["options"]
        typed = next((o for o in leaves if o["name"] == focused), None)
        if typed is None:
            raise AssertionError(f"the focused option {focused!r} needs a value (what is typed)")
        typed["focused"] = True
        return await self._interact(channel, user, APPLICATION_COMMAND_AUTOCOMPLETE, data)

    async def answer(
        self,
        interaction: FakeInteraction,
        timeout: float = 10.0,  # noqa: ASYNC109 (test API: a timeout fails the test)
    ) -> FakeMessage:
        """The bot's answer to an interaction: sent at once, or after a deferral."""
        await interaction.wait_response()

        def answered() -> FakeMessage | None:
            original = interaction.original
            return original if original is not None and not original.loading else None

        message = await self.wait_for(answered, timeout)
        assert message is not None  # wait_for returns a truthy value or fails
        return message

    async def click_button(
        self, message: FakeMessage, custom_id: str, user: FakeUser
    ) -> FakeInteraction:
        component = message.find_component(custom_id)
        if component is None:
            raise AssertionError(
                f"message {message.id} has no component {custom_id!r}: {message.components}"
            )
        if component.get("disabled"):
            raise AssertionError(f"button {custom_id!r} is disabled")
        channel = self._channel(message.channel_id)
        data = {"custom_id": custom_id, "component_type": component["type"]}
        return await self._interact(channel, user, MESSAGE_COMPONENT, data, message=message)

    async def drop_connection(self, *, code: int = 4000, shard: int = 0) -> None:
        """Close a shard's gateway socket; the client reconnects and RESUMEs."""
        await self._gateway.drop(code, shard)

    def refuse_sessions(self, code: int) -> None:
        """Answer every IDENTIFY and RESUME from now on by closing with ``code``, as
        Discord does while the shards do not suit the bot (4010, 4011)."""
        self._gateway.refusal = code

    async def request_reconnect(self, *, shard: int = 0) -> None:
        """Ask a shard to reconnect (op 7), as Discord does before moving a session."""
        await self._gateway.request_reconnect(shard)

    async def invalidate_session(self, *, shard: int = 0) -> None:
        """End a shard's session (op 9, not resumable): it IDENTIFYs again and gets a
        fresh READY, without what happened in between (a RESUME held by
        :meth:`disconnected` is refused the same way)."""
        await self._gateway.invalidate(shard)

    def disconnected(
        self, *, code: int = 4000, shard: int = 0
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Drop a shard's connection and hold reconnects (no HELLO) until the block exits.

        Dispatches made inside the block are certain to be replayed on RESUME.
        """
        return self._gateway.disconnected(code, shard)

    def holding_connections(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold every new gateway connection (no HELLO) until the block exits: bots
        started inside become ready together when it ends (see :attr:`sockets`)."""
        return self._gateway.holding()

    # Voice ------------------------------------------------------------------

    def attach_voice(self, voice: FakeVoiceServer) -> None:
        """Answer the bot's voice joins with VOICE_SERVER_UPDATEs pointing at ``voice``."""
        self.voice = voice

    async def join_voice(self, user: FakeUser, channel: FakeChannel) -> None:
        """``user`` joins (or switches to) a voice channel."""
        assert channel.guild_id is not None
        self._require_member(channel, user)
        await self._set_voice_state(self.guilds[channel.guild_id], user, channel.id)

    async def leave_voice(self, user: FakeUser, guild: FakeGuild) -> None:
        await self._set_voice_state(guild, user, None)

    async def move_member_voice(self, user: FakeUser, channel: FakeChannel) -> None:
        """A moderator drags ``user`` (the bot too) into another voice channel."""
        await self.join_voice(user, channel)

    async def disconnect_voice(self, user: FakeUser, guild: FakeGuild) -> None:
        """A moderator disconnects ``user``; for the bot its voice socket closes (4014)."""
        await self._set_voice_state(guild, user, None)
        if user is self.bot_user and self.voice is not None:
            await self.voice.drop(guild.id, code=4014)

    async def change_voice_server(self, guild: FakeGuild) -> None:
        """Move the bot's voice connection to a new voice server (a new token), as
        Discord does when a voice server goes away or the region changes."""
        assert self.voice is not None, "attach_voice() first"
        session = self.session_of(guild)
        session_id = session.session_id if session is not None else ""
        token = self.voice.issue_token(guild.id, self.bot_user.id, session_id)
        server = {"token": token, "guild_id": str(guild.id), "endpoint": self.voice.endpoint}
        await self._gateway.dispatch("VOICE_SERVER_UPDATE", server)

    def voice_channel_of(self, user: FakeUser, guild: FakeGuild) -> int | None:
        return self._voice_states.get(guild.id, {}).get(user.id)

    def stage_state(self, user: FakeUser, guild: FakeGuild) -> Json | None:
        """``suppress`` (True: in the audience) and ``request_to_speak_timestamp`` of
        ``user`` in a Stage channel; None when not in one."""
        return self._stage_states.get((guild.id, user.id))

    def voice_frames(self, guild: FakeGuild, *, audio_only: bool = True) -> list[VoiceFrame]:
        """The Opus frames the bot played in ``guild`` (decrypted by the voice server)."""
        assert self.voice is not None, "attach_voice() first"
        return self.voice.frames(guild.id, audio_only=audio_only)

    async def _own_voice_state(self, data: Json, session_id: str) -> None:
        """The bot's op 4: move it, and point it at the voice server when it joins."""
        guild = self.guilds.get(int(data["guild_id"]))
        if guild is None or self.voice is None:
            return
        channel_id = int(data["channel_id"]) if data.get("channel_id") else None
        was_in = self.voice_channel_of(self.bot_user, guild)
        await self._set_voice_state(guild, self.bot_user, channel_id, data, session_id)
        if channel_id is not None:
            token = self.voice.issue_token(guild.id, self.bot_user.id, session_id)
            server = {"token": token, "guild_id": str(guild.id), "endpoint": self.voice.endpoint}
            await self._gateway.dispatch("VOICE_SERVER_UPDATE", server)
            if was_in is not None and was_in != channel_id:
                # As Discord does on a move: the old voice connection ends, a new one starts.
                await self.voice.drop(guild.id)

    async def _set_voice_state(
        self,
        guild: FakeGuild,
        user: FakeUser,
        channel_id: int | None,
        flags: Json | None = None,
        session_id: str | None = None,
    ) -> None:
        states = self._voice_states.setdefault(guild.id, {})
        channel = guild.channels.get(channel_id) if channel_id is not None else None
        if channel is None or channel.type != STAGE_CHANNEL:
            self._stage_states.pop((guild.id, user.id), None)
        elif states.get(user.id) != channel_id:  # on a Stage, newcomers are in the audience
            self._stage_states[guild.id, user.id] = {
                "suppress": True,
                "request_to_speak_timestamp": None,
            }
        if channel_id is None:
            states.pop(user.id, None)
        else:
            states[user.id] = channel_id
        payload = self._voice_state_payload(guild, user.id, channel_id, flags, session_id)
        await self._gateway.dispatch("VOICE_STATE_UPDATE", payload, intent=VOICE_STATES_INTENT)

    def _voice_state_payload(
        self,
        guild: FakeGuild,
        user_id: int,
        channel_id: int | None,
        flags: Json | None = None,
        session_id: str | None = None,
        *,
        with_member: bool = True,
    ) -> Json:
        """A voice state; GUILD_CREATE leaves ``member`` out (it lists members apart)."""
        flags = flags or {}
        member = guild.members.get(user_id)
        payload: Json = {
            "guild_id": str(guild.id),
            "channel_id": str(channel_id) if channel_id else None,
            "user_id": str(user_id),
            "session_id": session_id or f"voice-session-{user_id}",
            "deaf": False,
            "mute": False,
            "self_deaf": bool(flags.get("self_deaf")),
            "self_mute": bool(flags.get("self_mute")),
            "self_video": False,
            "self_stream": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
            **self._stage_states.get((guild.id, user_id), {}),
        }
        if member is not None and with_member:
            payload["member"] = member.to_payload()
        return payload

    # Inspecting -------------------------------------------------------------

    @property
    def resumes(self) -> int:
        """RESUMEs of the current sessions, all shards together."""
        return self._gateway.resumes

    @property
    def identifies(self) -> int:
        """IDENTIFYs so far, all shards together."""
        return self._gateway.identifies

    @property
    def sessions(self) -> dict[int, GatewaySession]:
        """The current gateway session of each shard that identified, by shard id."""
        return self._gateway.sessions

    @property
    def sockets(self) -> int:
        """Gateway sockets open now (identified or not; held ones too)."""
        return self._gateway.sockets

    def shard_of(self, guild: FakeGuild) -> int:
        """The shard of :attr:`shards` that carries ``guild``'s events."""
        return shard_of(guild.id, self.shards)

    def session_of(self, guild: FakeGuild | None) -> GatewaySession | None:
        """The session ``guild``'s events go to (None: a DM's, shard 0)."""
        guild_id = guild.id if guild is not None else None
        return next((s for s in self.sessions.values() if s.carries(guild_id)), None)

    def messages_in(
        self, channel: FakeChannel | int, *, from_bot: bool = True
    ) -> list[FakeMessage]:
        """What everyone sees in a channel, in creation order: the bot's messages, or all.

        Deleted messages stay (``deleted=True``) so indices are stable; ephemeral
        ones are left out (find them on ``interaction.original``/``followups``).
        """
        channel_id = channel if isinstance(channel, int) else channel.id
        return [
            message
            for message in self.messages.values()
            if message.channel_id == channel_id
            and not message.flags & EPHEMERAL
            and (message.from_bot or not from_bot)
        ]

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,  # noqa: ASYNC109 (test API: a timeout fails the test)
    ) -> T:
        """Poll ``predicate`` every 10 ms until it is truthy and return its value."""
        deadline = time.monotonic() + timeout
        while True:
            await self._gateway.flush()
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                recent = ", ".join(f"{r.method} {r.path}" for r in self.requests[-5:]) or "none"
                raise AssertionError(
                    f"{getattr(predicate, '__qualname__', predicate)} stayed false for "
                    f"{timeout}s (last REST requests: {recent})"
                )
            await asyncio.sleep(0.01)

    async def wait_for_message(
        self,
        channel: FakeChannel | int,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 (test API: a timeout fails the test)
        predicate: Callable[[FakeMessage], object] | None = None,
        after: int = 0,
    ) -> FakeMessage:
        """The first bot message in ``messages_in(channel)[after:]`` matching ``predicate``.

        Without a predicate, deferred responses still "thinking" don't count.
        """

        def find() -> FakeMessage | None:
            for message in self.messages_in(channel)[after:]:
                if predicate(message) if predicate else not message.loading:
                    return message
            return None

        try:
            message = await self.wait_for(find, timeout)
        except AssertionError:
            seen = [(m.id, m.content) for m in self.messages_in(channel)]
            raise AssertionError(
                f"no matching bot message after index {after} within {timeout}s; "
                f"bot messages in the channel: {seen}"
            ) from None
        assert message is not None
        return message

    # Internals: world lookups -----------------------------------------------

    def _channel(self, channel_id: int) -> FakeChannel:
        if channel_id in self.dm_channels:
            return self.dm_channels[channel_id]
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
            if channel_id in guild.threads:
                return guild.threads[channel_id]
        raise ApiError(404, "Unknown Channel", 10003)

    def _guild(self, guild_id: int) -> FakeGuild:
        if guild_id not in self.guilds:
            raise ApiError(404, "Unknown Guild", 10004)
        return self.guilds[guild_id]

    def _message(self, channel_id: int, message_id: int) -> FakeMessage:
        message = self.messages.get(message_id)
        if message is None or message.deleted or message.channel_id != channel_id:
            raise ApiError(404, "Unknown Message", 10008)
        return message

    def _member(self, channel: FakeChannel, user: FakeUser) -> FakeMember | None:
        if channel.guild_id is None:
            return None
        return self.guilds[channel.guild_id].members.get(user.id)

    def _require_member(self, channel: FakeChannel, user: FakeUser) -> None:
        if channel.guild_id is not None and self._member(channel, user) is None:
            raise AssertionError(
                f"{user.name} is not a member of guild {channel.guild_id}: call guild.add_member"
            )

    def _permissions(self, channel: FakeChannel, user: FakeUser) -> int:
        if channel.guild_id is None:
            return EVERYONE_PERMS
        return self.guilds[channel.guild_id].permissions_for(user.id)

    def _synced_command(self, name: str, guild_id: int | None) -> tuple[Json, int | None]:
        for scope in (guild_id, None) if guild_id is not None else (None,):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command, scope
        synced = {scope: [c["name"] for c in cmds] for scope, cmds in self.commands.items()}
        raise AssertionError(f"/{name} was never synced by the bot; synced: {synced}")

    # Internals: creating things ---------------------------------------------

    def _new_attachment(self, upload: UploadedFile) -> FakeAttachment:
        attachment_id = self._new_id()
        url = f"{self.url}/attachments/{attachment_id}/{quote(upload.filename)}"
        attachment = FakeAttachment(
            attachment_id, upload.filename, upload.data, upload.content_type, url
        )
        self._attachments[attachment_id] = attachment
        return attachment

    def _publish(self, message: FakeMessage) -> None:
        """Store a new message and dispatch MESSAGE_CREATE (not for ephemeral ones)."""
        self._parse_mentions(message)
        self.messages[message.id] = message
        if not message.flags & EPHEMERAL:
            self._gateway.emit(
                "MESSAGE_CREATE",
                self._message_payload(message, gateway=True),
                intent=self._messages_intent(message),
            )

    def _parse_mentions(self, message: FakeMessage) -> None:
        """Fill who the message pings, from its content as limited by ``allowed_mentions``."""
        allowed = message.allowed_mentions
        parse = (
            set(allowed.get("parse", [])) if allowed is not None else {"users", "roles", "everyone"}
        )

        def pinged(kind: str, ids: Iterable[str]) -> list[int]:
            explicit = {int(i) for i in (allowed or {}).get(kind, [])}
            return [int(i) for i in dict.fromkeys(ids) if kind in parse or int(i) in explicit]

        user_ids = pinged("users", _USER_MENTION.findall(message.content))
        referenced = self.messages.get(message.reference or 0)
        if referenced and (allowed or {}).get("replied_user", allowed is None):
            user_ids.append(referenced.author.id)
        message.mentions = [self.users[i] for i in dict.fromkeys(user_ids) if i in self.users]
        roles = self.guilds[message.guild_id].roles if message.guild_id else {}
        role_ids = pinged("roles", _ROLE_MENTION.findall(message.content))
        message.mention_roles = [role_id for role_id in role_ids if role_id in roles]
        message.mention_everyone = "everyone" in parse and (
            "@everyone" in message.content or "@here" in message.content
        )

    def _message_from_payload(
        self, channel: FakeChannel, author: FakeUser, body: Body, **extra: Any
    ) -> FakeMessage:
        payload = body.payload
        reference = payload.get("message_reference") or {}
        message = FakeMessage(
            self._new_id(),
            channel.id,
            channel.guild_id,
            author,
            payload.get("content") or "",
            from_bot=True,
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            attachments=[self._new_attachment(upload) for upload in body.files],
            allowed_mentions=payload.get("allowed_mentions"),
            reference=int(reference["message_id"]) if reference.get("message_id") else None,
            flags=payload.get("flags") or 0,
            **extra,
        )
        self._publish(message)
        return message

    def _apply_edit(self, message: FakeMessage, body: Body) -> None:
        """Apply a PATCH payload (and new files) and dispatch MESSAGE_UPDATE."""
        payload = body.payload
        message.edits.append(payload)
        if "content" in payload:
            message.content = payload["content"] or ""
            message.history.append(message.content)
            self._parse_mentions(message)
        for key in ("embeds", "components"):
            if key in payload:
                setattr(message, key, payload[key] or [])
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        if payload.get("flags") is not None:
            message.flags = (message.flags & EPHEMERAL) | (payload["flags"] & ~EPHEMERAL)
        message.flags &= ~LOADING
        if "attachments" in payload:
            kept = {int(item["id"]) for item in payload["attachments"] or []}
            message.attachments = [a for a in message.attachments if a.id in kept]
        message.attachments += [self._new_attachment(upload) for upload in body.files]
        message.edited_timestamp = now()
        if not message.flags & EPHEMERAL:
            self._gateway.emit(
                "MESSAGE_UPDATE",
                self._message_payload(message, gateway=True),
                intent=self._messages_intent(message),
            )

    def edit_by_author(self, message: FakeMessage, content: str) -> None:
        """The message's author edits its text in Discord (MESSAGE_UPDATE follows)."""
        self._apply_edit(message, Body({"content": content}))

    def _delete_message(self, message: FakeMessage) -> None:
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        self._gateway.emit("MESSAGE_DELETE", data, intent=self._messages_intent(message))

    async def _interact(
        self,
        channel: FakeChannel,
        user: FakeUser,
        kind: int,
        data: Json,
        *,
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        self._require_member(channel, user)
        interaction_id = self._new_id()
        interaction = FakeInteraction(
            interaction_id,
            f"interaction-token-{interaction_id}",
            kind,
            channel.id,
            channel.guild_id,
            user,
            data,
            message=message,
        )
        self.interactions.append(interaction)
        await self._gateway.dispatch("INTERACTION_CREATE", self._interaction_payload(interaction))
        return interaction

    def _command_options(
        self,
        schema: list[Json],
        path: list[str],
        values: dict[str, Any],
        resolved: Json,
        channel: FakeChannel,
    ) -> list[Json]:
        """Build ``data.options`` for a subcommand path from the synced option schema."""
        nested = {o["name"]: o for o in schema if o["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP)}
        if path:
            head, *rest = path
            if head not in nested:
                raise AssertionError(f"no subcommand {head!r}; have {sorted(nested)}")
            options = self._command_options(
                nested[head].get("options", []), rest, values, resolved, channel
            )
            return [{"type": nested[head]["type"], "name": head, "options": options}]
        if nested:
            raise AssertionError(f"this command needs a subcommand, one of {sorted(nested)}")
        known = {option["name"]: option for option in schema}
        if unknown := set(values) - set(known):
            raise AssertionError(
                f"unknown options {sorted(unknown)}; the command has {sorted(known)}"
            )
        missing = [name for name, o in known.items() if o.get("required") and name not in values]
        if missing:
            raise AssertionError(f"missing required options {missing}")
        return [
            {
                "type": known[name]["type"],
                "name": name,
                "value": self._option_value(known[name]["type"], value, resolved, channel),
            }
            for name, value in values.items()
        ]

    def _option_value(self, kind: int, value: Any, resolved: Json, channel: FakeChannel) -> Any:
        """The wire value of one option, adding users/roles/... to ``resolved``."""
        if kind == 3:
            return str(value)
        if kind == 4:
            return int(value)
        if kind == 5:
            return bool(value)
        if kind == 10:
            return float(value)
        if kind in (6, 9) and isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.to_payload()
            member = self._member(channel, value)
            if member is not None:
                resolved.setdefault("members", {})[str(value.id)] = {
                    **member.to_payload(with_user=False),
                    "permissions": str(self._permissions(channel, value)),
                }
            return str(value.id)
        if kind in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_payload()
            return str(value.id)
        if kind == 7 and isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                **value.to_payload(),
                "permissions": str(self._permissions(value, self.bot_user)),
            }
            return str(value.id)
        if kind == 11 and isinstance(value, dict):
            attachment = self._new_attachment(
                UploadedFile(value["filename"], value["data"], value.get("content_type"))
            )
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.to_payload()
            return str(attachment.id)
        raise AssertionError(f"cannot pass {value!r} as an option of type {kind}")

    # Internals: payloads ----------------------------------------------------

    def _messages_intent(self, message: FakeMessage) -> int:
        return GUILD_MESSAGES_INTENT if message.guild_id else DM_MESSAGES_INTENT

    def _content_hidden(self, message: FakeMessage) -> bool:
        """Discord blanks guild message content without the message_content intent."""
        return not (
            self._gateway.has_intent(MESSAGE_CONTENT_INTENT)
            or message.guild_id is None
            or message.author is self.bot_user
            or self.bot_user in message.mentions
        )

    def _message_payload(
        self, message: FakeMessage, *, gateway: bool = False, nested: bool = False
    ) -> Json:
        payload: Json = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": message.author.to_payload(),
            "content": message.content,
            "timestamp": iso(message.timestamp),
            "edited_timestamp": iso(message.edited_timestamp) if message.edited_timestamp else None,
            "tts": False,
            "mention_everyone": message.mention_everyone,
            "mentions": [self._mention_payload(message, user) for user in message.mentions],
            "mention_roles": [str(role_id) for role_id in message.mention_roles],
            "attachments": [attachment.to_payload() for attachment in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "pinned": message.pinned,
            "type": message.type,
            "flags": message.flags,
            "sticker_items": message.stickers,
        }
        if message.forwarded:
            payload["message_snapshots"] = message.forwarded
        if message.poll is not None:
            payload["poll"] = message.poll
        if message.guild_id:
            payload["guild_id"] = str(message.guild_id)
        if message.webhook_id:
            payload["webhook_id"] = str(message.webhook_id)
        if message.interaction_id:
            payload.update(self._interaction_metadata(message.interaction_id))
        if message.reference:
            payload["type"] = message.type or MESSAGE_TYPE_REPLY
            payload["message_reference"] = self._reference_payload(message)
            if not nested:
                referenced = self.messages.get(message.reference)
                payload["referenced_message"] = (
                    self._message_payload(referenced, nested=True)
                    if referenced and not referenced.deleted
                    else None
                )
        if gateway and message.guild_id and not message.webhook_id:
            member = self.guilds[message.guild_id].members.get(message.author.id)
            if member is not None:
                payload["member"] = member.to_payload(with_user=False)
        if gateway and self._content_hidden(message):
            payload.update(content="", embeds=[], attachments=[], components=[])
        return payload

    def _mention_payload(self, message: FakeMessage, user: FakeUser) -> Json:
        payload = user.to_payload()
        member = self.guilds[message.guild_id].members.get(user.id) if message.guild_id else None
        if member is not None:
            payload["member"] = member.to_payload(with_user=False)
        return payload

    def _reference_payload(self, message: FakeMessage) -> Json:
        reference = {
            "type": 0,
            "message_id": str(message.reference),
            "channel_id": str(message.channel_id),
        }
        if message.guild_id:
            reference["guild_id"] = str(message.guild_id)
        return reference

    def _interaction_metadata(self, interaction_id: int) -> Json:
        interaction = next(i for i in self.interactions if i.id == interaction_id)
        return {
            "type": MESSAGE_TYPE_COMMAND,
            "application_id": str(self.application_id),
            "interaction_metadata": {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user.to_payload(),
                "authorizing_integration_owners": {},
            },
        }

    def _interaction_payload(self, interaction: FakeInteraction) -> Json:
        channel = self._channel(interaction.channel_id)
        payload: Json = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": interaction.type,
            "token": interaction.token,
            "version": 1,
            "data": interaction.data,
            "channel_id": str(channel.id),
            "channel": channel.to_payload(),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "app_permissions": str(self._permissions(channel, self.bot_user)),
        }
        member = self._member(channel, interaction.user)
        if member is not None:
            payload.update(
                guild_id=str(channel.guild_id),
                guild_locale="en-US",
                guild={"id": str(channel.guild_id), "locale": "en-US", "features": []},
                member={
                    **member.to_payload(),
                    "permissions": str(self._permissions(channel, interaction.user)),
                },
                context=0,
                authorizing_integration_owners={"0": str(channel.guild_id)},
            )
        else:
            payload.update(
                user=interaction.user.to_payload(),
                context=1,
                authorizing_integration_owners={"1": str(interaction.user.id)},
            )
        if interaction.message is not None:
            payload["message"] = self._message_payload(interaction.message)
        return payload

    def _ready_payload(self, session_id: str, shard: list[int]) -> Json:
        """READY of a shard's session: only the guilds of that shard."""
        shard_id, shard_count = shard
        guilds = [g for g in self.guilds if shard_of(g, shard_count) == shard_id]
        return {
            "v": 10,
            "user": {**self.bot_user.to_payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(guild_id), "unavailable": True} for guild_id in guilds],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway/resume",
            "shard": shard,
            "application": {"id": str(self.application_id), "flags": APPLICATION_FLAGS},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": ["local"],
        }

    def _guild_create_payload(self, guild: FakeGuild) -> Json:
        voice = self._voice_states.get(guild.id, {})
        if self._gateway.has_intent(PRESENCES_INTENT):
            payload = guild.to_payload()
        else:  # Discord sends the members in voice channels too
            payload = guild.to_payload(member_ids={self.bot_user.id, *voice})
        if self._gateway.has_intent(VOICE_STATES_INTENT):
            # The bot's own voice state belonged to its previous session.
            payload["voice_states"] = [
                self._voice_state_payload(guild, user_id, channel_id, with_member=False)
                for user_id, channel_id in voice.items()
                if user_id != self.bot_user.id
            ]
        return payload

    def _application_payload(self) -> Json:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot": self.bot_user.to_payload(),
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner.to_payload(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": APPLICATION_FLAGS,
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
        }

    # REST -------------------------------------------------------------------

    def _routes(self) -> Iterable[tuple[str, str, Handler]]:
        channel = r"/channels/{channel_id:\d+}"
        message = channel + r"/messages/{message_id:\d+}"
        commands = r"/applications/{application_id:\d+}"
        webhook = r"/webhooks/{webhook_id:\d+}/{token}"
        api_routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self._get_current_user),
            ("GET", r"/users/{user_id:\d+}", self._get_user),
            ("POST", "/users/@me/channels", self._open_dm),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway),
            ("GET", channel, self._get_channel),
            ("POST", channel + "/typing", self._trigger_typing),
            ("GET", channel + "/messages", self._get_history),
            ("POST", channel + "/messages", self._create_message),
            ("GET", message, self._get_message),
            ("PATCH", message, self._edit_message),
            ("DELETE", message, self._delete_message_route),
            ("PUT", message + "/reactions/{emoji}/{user}", self._add_reaction),
            ("DELETE", message + "/reactions/{emoji}/{user}", self._remove_reaction),
            ("GET", r"/guilds/{guild_id:\d+}", self._get_guild),
            ("GET", r"/guilds/{guild_id:\d+}/channels", self._get_guild_channels),
            ("GET", r"/guilds/{guild_id:\d+}/members/{user_id:\d+}", self._get_member),
            ("PATCH", r"/guilds/{guild_id:\d+}/voice-states/@me", self._edit_own_voice_state),
            ("GET", commands + "/commands", self._get_commands),
            ("PUT", commands + "/commands", self._put_commands),
            ("GET", commands + r"/guilds/{guild_id:\d+}/commands", self._get_commands),
            ("PUT", commands + r"/guilds/{guild_id:\d+}/commands", self._put_commands),
            (
                "POST",
                r"/interactions/{interaction_id:\d+}/{token}/callback",
                self._interaction_callback,
            ),
            ("POST", webhook, self._execute_webhook),
            ("GET", webhook + "/messages/{message_id}", self._get_webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", self._edit_webhook_message),
            ("DELETE", webhook + "/messages/{message_id}", self._delete_webhook_message),
            *self._admin.routes(),
            *self.webhook_routes.routes(),
        ]
        for method, path, handler in api_routes:
            yield method, API + path, handler
        yield "GET", "/gateway", self._gateway.handle
        yield "GET", "/gateway/resume", self._gateway.handle
        yield "GET", r"/attachments/{attachment_id:\d+}/{filename}", self._get_attachment
        yield "*", "/{tail:.*}", self._unknown_route

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API + "/"):
            arrived = time.monotonic()
            body = await Body.read(request)
            request[BODY] = body
            self.requests.append(
                RequestRecord(
                    request.method,
                    request.path.removeprefix(API),
                    dict(request.query),
                    body.json,
                    arrived,
                    body.files,
                    unquote(request.headers.get("X-Audit-Log-Reason", "")) or None,
                    bot_token(request),
                )
            )
        if gate := self.holding.get((request.method, request.path.removeprefix(API))):
            await gate.wait()
        if (
            wait := self.rate_limited.get((request.method, request.path.removeprefix(API)))
        ) is not None:
            return slowmode_refusal(wait, code=0)
        if (request.method, request.path.removeprefix(API)) in self.dropping:
            assert request.transport is not None
            request.transport.abort()  # aiohttp then writes no response, quietly
            return web.Response()
        try:
            response = await handler(request)
        except ApiError as error:
            response = json_response(
                {"message": error.message, "code": error.code}, status=error.status
            )
        if failed := self.fail_after.pop((request.method, request.path.removeprefix(API)), None):
            response = json_response({"message": "Server error", "code": 0}, status=failed)
        if request.path.startswith(API + "/"):
            add_rate_limit_headers(request, response)
        return response

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        log.warning("fake discord: unknown route %s %s", request.method, request.path)
        raise ApiError(404, "Unknown route", 0)

    async def _get_current_user(self, request: web.Request) -> web.StreamResponse:
        return json_response({**self.bot_user.to_payload(), "verified": True, "mfa_enabled": False})

    async def _get_user(self, request: web.Request) -> web.StreamResponse:
        user = self.users.get(path_id(request, "user_id"))
        if user is None:
            raise ApiError(404, "Unknown User", 10013)
        return json_response(user.to_payload())

    async def _open_dm(self, request: web.Request) -> web.StreamResponse:
        user = self.users.get(int(request_body(request).payload.get("recipient_id", 0)))
        if user is None:
            raise ApiError(404, "Unknown User", 10013)
        return json_response(self.open_dm(user).to_payload())

    async def _get_application(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._application_payload())

    async def _get_gateway(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "url": f"ws://127.0.0.1:{self.port}/gateway",
                "shards": self.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_channel(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._channel(path_id(request, "channel_id")).to_payload())

    async def _trigger_typing(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(path_id(request, "channel_id"))
        self.typing.append((channel.id, time.monotonic()))
        return no_content()

    async def _get_history(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._channel(path_id(request, "channel_id")).id
        query = request.query
        limit = int(query.get("limit", 50))
        visible = [m for m in self.messages_in(channel_id, from_bot=False) if not m.deleted]
        if "after" in query:
            visible = [m for m in visible if m.id > int(query["after"])][:limit]
        elif "before" in query:
            visible = [m for m in visible if m.id < int(query["before"])][-limit:]
        else:
            visible = visible[-limit:]
        return json_response([self._message_payload(m) for m in reversed(visible)])

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(path_id(request, "channel_id"))
        body = request_body(request)
        if body.payload.get("message_reference") and not self._bot_may(
            channel, READ_MESSAGE_HISTORY
        ):
            raise missing_permissions()  # as on Discord: a reply needs Read Message History
        if body.files and not self._bot_may(channel, ATTACH_FILES):
            raise missing_permissions()  # and a file needs Attach Files
        if body.payload.get("embeds") and not self._bot_may(channel, EMBED_LINKS):
            body.payload["embeds"] = []  # as on Discord: dropped without Embed Links,
            if not (body.payload.get("content") or body.files or body.payload.get("components")):
                raise ApiError(400, "Cannot send an empty message", 50006)  # and then empty
        if self._replies_to_a_deleted_message(body.payload):
            raise invalid_form_body()  # unless it says `fail_if_not_exists: false`
        if wait := self._slowmode_wait(channel):
            return slowmode_refusal(wait)
        if channel.is_thread and channel.archived:  # as on Discord: a message unarchives it
            channel.archived = False
            self._guild(channel.guild_id or 0).channel_updated(channel)
        message = self._message_from_payload(channel, self.bot_user, body, token=bot_token(request))
        return json_response(self._message_payload(message))

    def _slowmode_wait(self, channel: FakeChannel) -> float:
        """Seconds the channel's slowmode still holds the bot's next message (0: it may
        post now, and that post starts the next wait). As on Discord, bots are held too
        unless they may manage messages or the channel, a thread's threads, or bypass
        slowmode."""
        exempt = SLOWMODE_EXEMPT | (MANAGE_THREADS if channel.is_thread else 0)
        if not channel.rate_limit_per_user or self._bot_may(channel, exempt):
            return 0.0
        now = time.monotonic()
        wait = self._bot_posted.get(channel.id, -math.inf) + channel.rate_limit_per_user - now
        if wait > 0:
            return wait
        self._bot_posted[channel.id] = now
        return 0.0

    def _replies_to_a_deleted_message(self, payload: Json) -> bool:
        reference = payload.get("message_reference") or {}
        if not reference.get("message_id") or reference.get("fail_if_not_exists") is False:
            return False
        referenced = self.messages.get(int(reference["message_id"]))
        return referenced is None or referenced.deleted

    def _bot_may(self, channel: FakeChannel, permission: int) -> bool:
        """Whether the bot has ``permission`` in ``channel``: its guild permissions and the
        overwrite for it there (a bot that is no member is not checked)."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        if guild is None or self.bot_user.id not in guild.members:
            return True
        permissions = guild.permissions_for(self.bot_user.id)
        if permissions & ADMINISTRATOR:
            return True
        for overwrite in channel.overwrites:
            if overwrite["id"] == str(self.bot_user.id):
                permissions = permissions & ~int(overwrite["deny"]) | int(overwrite["allow"])
        return bool(permissions & permission)

    async def _get_message(self, request: web.Request) -> web.StreamResponse:
        message = self._message(path_id(request, "channel_id"), path_id(request, "message_id"))
        return json_response(self._message_payload(message))

    async def _edit_message(self, request: web.Request) -> web.StreamResponse:
        message = self._message(path_id(request, "channel_id"), path_id(request, "message_id"))
        self._refuse_in_archived_thread(message)
        if message.author is not self.bot_user:
            raise ApiError(403, "Cannot edit a message authored by another user", 50005)
        self._apply_edit(message, request_body(request))
        return json_response(self._message_payload(message))

    async def _delete_message_route(self, request: web.Request) -> web.StreamResponse:
        message = self._message(path_id(request, "channel_id"), path_id(request, "message_id"))
        self._refuse_in_archived_thread(message)
        self._delete_message(message)
        return no_content()

    def _refuse_in_archived_thread(self, message: FakeMessage) -> None:
        """As on Discord: a message of an archived thread is neither edited nor deleted
        (sending one there unarchives it)."""
        channel = self._channel(message.channel_id)
        if channel.is_thread and channel.archived:
            raise ApiError(400, "Thread is archived", 50083)

    def _reaction_target(self, request: web.Request) -> tuple[list[int], int]:
        message = self._message(path_id(request, "channel_id"), path_id(request, "message_id"))
        user = request.match_info["user"]
        user_id = self.bot_user.id if user == "@me" else int(user)
        return message.reactions.setdefault(request.match_info["emoji"], []), user_id

    async def _add_reaction(self, request: web.Request) -> web.StreamResponse:
        users, user_id = self._reaction_target(request)
        if user_id not in users:
            users.append(user_id)
        return no_content()

    async def _remove_reaction(self, request: web.Request) -> web.StreamResponse:
        users, user_id = self._reaction_target(request)
        if user_id in users:
            users.remove(user_id)
        return no_content()

    async def _get_guild(self, request: web.Request) -> web.StreamResponse:
        payload = self._guild(path_id(request, "guild_id")).to_payload()
        for key in ("channels", "members", "voice_states", "presences", "threads", "joined_at"):
            payload.pop(key)
        if request.query.get("with_counts") in _TRUE:  # counts of now, members intent or not
            payload["approximate_member_count"] = payload["member_count"]
            payload["approximate_presence_count"] = 0
        return json_response(payload)

    async def _get_guild_channels(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild(path_id(request, "guild_id"))
        return json_response([channel.to_payload() for channel in guild.channels.values()])

    async def _get_member(self, request: web.Request) -> web.StreamResponse:
        member = self._guild(path_id(request, "guild_id")).members.get(path_id(request, "user_id"))
        if member is None:
            raise ApiError(404, "Unknown Member", 10007)
        return json_response(member.to_payload())

    async def _edit_own_voice_state(self, request: web.Request) -> web.StreamResponse:
        """The bot on a Stage: speak (``suppress: false``, needs Mute Members), go back to
        the audience, or ask to speak (``request_to_speak_timestamp``, needs Request to
        Speak)."""
        guild = self._guild(path_id(request, "guild_id"))
        body = request_body(request).payload
        channel_id = self.voice_channel_of(self.bot_user, guild)
        state = self._stage_states.get((guild.id, self.bot_user.id))
        if state is None or str(body.get("channel_id")) != str(channel_id):
            raise ApiError(400, "Cannot execute action on this channel type", 50024)
        mine = discord.Permissions(guild.permissions_for(self.bot_user.id))
        if (body.get("suppress") is False and not mine.mute_members) or (
            body.get("request_to_speak_timestamp") and not mine.request_to_speak
        ):
            raise missing_permissions()
        state.update({k: body[k] for k in ("suppress", "request_to_speak_timestamp") if k in body})
        session = self.session_of(guild)
        flags = next(
            (d for d in reversed(self.voice_state_updates) if int(d["guild_id"]) == guild.id), {}
        )
        payload = self._voice_state_payload(
            guild, self.bot_user.id, channel_id, flags, session.session_id if session else None
        )
        await self._gateway.dispatch("VOICE_STATE_UPDATE", payload, intent=VOICE_STATES_INTENT)
        return no_content()

    def _command_scope(self, request: web.Request) -> int | None:
        if path_id(request, "application_id") != self.application_id:
            raise ApiError(403, "Missing Access", 50001)
        if "guild_id" not in request.match_info:
            return None
        return self._guild(path_id(request, "guild_id")).id

    async def _get_commands(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.commands.get(self._command_scope(request), []))

    async def _put_commands(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        previous = {(c["name"], c.get("type", 1)): c["id"] for c in self.commands.get(scope, [])}
        stored = []
        for command in request_body(request).json or []:
            key = (command["name"], command.get("type", 1))
            entry = {
                "type": 1,
                "description": "",
                "default_member_permissions": None,
                "nsfw": False,
                **command,
                "id": previous.get(key) or str(self._new_id()),
                "application_id": str(self.application_id),
                "version": str(self._new_id()),
            }
            if scope is not None:
                entry["guild_id"] = str(scope)
            stored.append(entry)
        self.commands[scope] = stored
        return json_response(stored)

    async def _interaction_callback(self, request: web.Request) -> web.StreamResponse:
        interaction = self._interaction(
            path_id(request, "interaction_id"), request.match_info["token"]
        )
        if interaction.responses:
            raise ApiError(400, "Interaction has already been acknowledged.", 40060)
        body = request_body(request)
        kind = body.payload.get("type")
        channel = self._channel(interaction.channel_id)
        message: FakeMessage | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            data = Body(dict(body.payload.get("data") or {}), body.files)
            if kind == DEFERRED_CHANNEL_MESSAGE:
                data.payload["flags"] = data.payload.get("flags", 0) | LOADING
            message = self._message_from_payload(
                channel, self.bot_user, data, interaction_id=interaction.id
            )
            interaction.original = message
        elif kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            if interaction.message is None:
                raise ApiError(400, "Interaction is not a component interaction", 50035)
            interaction.original = interaction.message
            if kind == UPDATE_MESSAGE:
                message = interaction.message
                self._apply_edit(message, Body(body.payload.get("data") or {}, body.files))
        interaction.record_response(body.payload)
        if request.query.get("with_response") not in _TRUE:
            return no_content()
        callback: Json = {"interaction": {"id": str(interaction.id), "type": interaction.type}}
        if message is not None:
            callback["interaction"].update(
                response_message_id=str(message.id),
                response_message_loading=bool(message.flags & LOADING),
                response_message_ephemeral=bool(message.flags & EPHEMERAL),
            )
            callback["resource"] = {"type": kind, "message": self._message_payload(message)}
        return json_response(callback)

    def _interaction(self, interaction_id: int, token: str) -> FakeInteraction:
        for interaction in self.interactions:
            if interaction.id == interaction_id and interaction.token == token:
                return interaction
        raise ApiError(404, "Unknown interaction", 10062)

    def _webhook_sender(self, request: web.Request) -> FakeInteraction | FakeWebhook:
        """The interaction (``/webhooks/{application_id}/{token}``) or webhook addressed."""
        webhook_id, token = path_id(request, "webhook_id"), request.match_info["token"]
        if webhook_id == self.application_id:
            for interaction in self.interactions:
                if interaction.token != token:
                    continue
                if interaction.expired:
                    raise ApiError(401, "Invalid Webhook Token", 50027)
                return interaction
        webhook = self.webhooks.get(webhook_id)
        if webhook is None or webhook.token != token:
            raise ApiError(404, "Unknown Webhook", 10015)
        return webhook

    def _webhook_message(self, request: web.Request) -> FakeMessage:
        """``.../messages/{id}`` of an interaction (``@original`` or a follow-up) or webhook."""
        sender, wanted = self._webhook_sender(request), request.match_info["message_id"]
        message: FakeMessage | None
        if isinstance(sender, FakeInteraction) and wanted == "@original":
            message = sender.original
        elif isinstance(sender, FakeInteraction):
            sent = [sender.original, *sender.followups]
            message = next((m for m in sent if m is not None and str(m.id) == wanted), None)
        else:
            message = self.messages.get(int(wanted)) if wanted.isdigit() else None
            if message is not None and message.webhook_id != sender.id:
                message = None
        if message is None or message.deleted:
            raise ApiError(404, "Unknown Message", 10008)
        if isinstance(sender, FakeWebhook):
            self.webhook_routes.check_thread(sender, message, request)
        return message

    async def _execute_webhook(self, request: web.Request) -> web.StreamResponse:
        sender, body = self._webhook_sender(request), request_body(request)
        if isinstance(sender, FakeInteraction) and sender.original and sender.original.loading:
            # Like Discord: the first follow-up after a deferral fills in the "thinking" message.
            message = sender.original
            self._apply_edit(message, body)
            sender.followups.append(message)
        elif isinstance(sender, FakeInteraction):
            channel = self._channel(sender.channel_id)
            message = self._message_from_payload(
                channel, self.bot_user, body, interaction_id=sender.id
            )
            sender.followups.append(message)
        else:
            if (throttled := self.webhook_routes.throttled()) is not None:
                return throttled
            payload = body.payload
            author = FakeUser(sender.id, payload.get("username") or sender.name, bot=True)
            message = self._message_from_payload(
                self.webhook_routes.execute_target(sender, request),
                author,
                body,
                webhook_id=sender.id,
                avatar_url=payload.get("avatar_url"),
            )
        if request.query.get("wait") not in _TRUE:
            return no_content()
        return json_response(self._message_payload(message))

    async def _get_webhook_message(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._message_payload(self._webhook_message(request)))

    async def _edit_webhook_message(self, request: web.Request) -> web.StreamResponse:
        message = self._webhook_message(request)
        self._apply_edit(message, request_body(request))
        return json_response(self._message_payload(message))

    async def _delete_webhook_message(self, request: web.Request) -> web.StreamResponse:
        self._delete_message(self._webhook_message(request))
        return no_content()

    async def _get_attachment(self, request: web.Request) -> web.StreamResponse:
        attachment = self._attachments.get(path_id(request, "attachment_id"))
        if attachment is None:
            raise web.HTTPNotFound()
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )
