"""Server administration over REST, as discord.py 2.7 calls it: channels, threads, pins, roles.

Every route checks the bot's guild permissions (there are no channel overwrites in the
fake) and answers Discord's errors: 403 50013 "Missing Permissions", 404 with
10003/10007/10008/10011 for unknown ids, 400 50035 for an invalid body.  Changes
reach the bot as Discord sends them: CHANNEL_CREATE/UPDATE, THREAD_CREATE/UPDATE,
MESSAGE_UPDATE + CHANNEL_PINS_UPDATE (and a "pinned a message" system message),
GUILD_ROLE_CREATE (+ GUILD_ROLE_UPDATE for the roles it pushes up), GUILD_MEMBER_UPDATE.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import discord
from aiohttp import web

from tests.fakes.discord_guild import FakeGuild
from tests.fakes.discord_models import (
    CATEGORY_CHANNEL,
    DM_MESSAGES_INTENT,
    GUILDS_INTENT,
    NEWS_CHANNEL,
    NEWS_THREAD,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    FakeChannel,
    FakeMember,
    FakeMessage,
    FakeRole,
    Json,
    iso,
    now,
)
from tests.fakes.discord_rest import (
    ApiError,
    Handler,
    invalid_form_body,
    json_response,
    missing_permissions,
    no_content,
    path_id,
    request_body,
)

if TYPE_CHECKING:
    from tests.fakes.discord_server import FakeDiscord

MANAGE_CHANNELS = discord.Permissions(manage_channels=True).value
MANAGE_THREADS = discord.Permissions(manage_threads=True).value
MANAGE_ROLES = discord.Permissions(manage_roles=True).value
PIN_MESSAGES = discord.Permissions(pin_messages=True).value
"""Since 2026-02-23 MANAGE_MESSAGES alone no longer lets a bot pin."""
CREATE_THREADS = {
    NEWS_THREAD: discord.Permissions(create_public_threads=True).value,
    PUBLIC_THREAD: discord.Permissions(create_public_threads=True).value,
    PRIVATE_THREAD: discord.Permissions(create_private_threads=True).value,
}
MAX_SLOWMODE = 21_600
MAX_PINS = 250
MAX_ROLES = 250
PINNED_MESSAGE = 6
"""The type of the "<bot> pinned a message" system message."""


class AdminRoutes:
    """The administration routes of a :class:`FakeDiscord` (see the module docstring)."""

    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path below ``/api/v10``, handler); pins also on the pre-2.7 paths."""
        guild = r"/guilds/{guild_id:\d+}"
        channel = r"/channels/{channel_id:\d+}"
        member_role = guild + r"/members/{user_id:\d+}/roles/{role_id:\d+}"
        routes: list[tuple[str, str, Handler]] = [
            ("POST", guild + "/channels", self._create_channel),
            ("PATCH", channel, self._edit_channel),
            ("POST", channel + "/threads", self._start_thread),
            ("POST", channel + r"/messages/{message_id:\d+}/threads", self._start_thread),
            ("GET", channel + "/messages/pins", self._get_pins),
            ("GET", channel + "/pins", self._get_pins_legacy),
            ("POST", guild + "/roles", self._create_role),
            ("PUT", member_role, self._add_member_role),
            ("DELETE", member_role, self._remove_member_role),
        ]
        for pins in (channel + "/messages/pins", channel + "/pins"):
            routes.append(("PUT", pins + r"/{message_id:\d+}", self._pin))
            routes.append(("DELETE", pins + r"/{message_id:\d+}", self._unpin))
        return routes

    # Channels ---------------------------------------------------------------

    async def _create_channel(self, request: web.Request) -> web.StreamResponse:
        guild = self._fake._guild(path_id(request, "guild_id"))
        self._require(guild, MANAGE_CHANNELS)
        payload = request_body(request).payload
        kind = payload.get("type", TEXT_CHANNEL)
        if kind not in (TEXT_CHANNEL, VOICE_CHANNEL, CATEGORY_CHANNEL):
            raise invalid_form_body()
        parent_id = payload.get("parent_id")
        if parent_id is not None:
            parent = guild.channels.get(int(parent_id))
            if kind == CATEGORY_CHANNEL or parent is None or parent.type != CATEGORY_CHANNEL:
                raise invalid_form_body()
        channel = guild.add_channel(
            _channel_name(payload.get("name"), kind),
            kind,
            topic=_topic(payload) if kind == TEXT_CHANNEL else None,
            rate_limit_per_user=_slowmode(payload),
            parent_id=int(parent_id) if parent_id is not None else None,
        )
        return json_response(channel.to_payload())

    async def _edit_channel(self, request: web.Request) -> web.StreamResponse:
        channel, guild = self._guild_channel(request)
        if not (channel.is_thread and channel.owner_id == self._fake.bot_user.id):
            self._require(guild, MANAGE_THREADS if channel.is_thread else MANAGE_CHANNELS)
        payload = request_body(request).payload
        if "name" in payload:
            channel.name = _channel_name(payload["name"], channel.type)
        if "rate_limit_per_user" in payload:
            channel.rate_limit_per_user = _slowmode(payload)
        if "topic" in payload and channel.type == TEXT_CHANNEL:
            channel.topic = _topic(payload)
        if "parent_id" in payload and not channel.is_thread:
            parent = guild.channels.get(int(payload["parent_id"] or 0))
            if payload["parent_id"] and (parent is None or parent.type != CATEGORY_CHANNEL):
                raise invalid_form_body()
            channel.parent_id = parent.id if parent else None
        guild.channel_updated(channel)
        return json_response(channel.to_payload())

    async def _start_thread(self, request: web.Request) -> web.StreamResponse:
        """From a message (public, same id as the message) or without (default: private);
        in an announcement channel only announcement threads."""
        channel, guild = self._guild_channel(request)
        if channel.type not in (TEXT_CHANNEL, NEWS_CHANNEL):
            raise ApiError(400, "Cannot execute action on this channel type", 50024)
        payload = request_body(request).payload
        news = channel.type == NEWS_CHANNEL
        message: FakeMessage | None = None
        if "message_id" in request.match_info:
            message = self._fake._message(channel.id, path_id(request, "message_id"))
            kind = NEWS_THREAD if news else PUBLIC_THREAD
        else:
            kind = payload.get("type") or PRIVATE_THREAD
        if kind not in CREATE_THREADS or (kind == NEWS_THREAD) != news:
            raise invalid_form_body()
        self._require(guild, CREATE_THREADS[kind])
        if message is not None and message.id in guild.threads:
            raise ApiError(400, "A thread has already been created for this message", 160004)
        thread = guild.add_thread(
            channel,
            _name(payload.get("name")),
            self._fake.bot_user,
            type=kind,
            thread_id=message.id if message else None,
            rate_limit_per_user=_slowmode(payload),
        )
        return json_response(thread.to_payload())

    # Pins -------------------------------------------------------------------

    async def _pin(self, request: web.Request) -> web.StreamResponse:
        channel, message = self._pin_target(request)
        if message.pinned:
            return no_content()
        if len(self._pinned(channel)) >= MAX_PINS:
            raise ApiError(400, f"Maximum number of pins reached ({MAX_PINS})", 30003)
        message.pinned_at = now()
        self._pins_changed(channel, message)
        notice = FakeMessage(
            self._fake._new_id(),
            channel.id,
            channel.guild_id,
            self._fake.bot_user,
            "",
            from_bot=False,  # Discord writes it, not the bot
            allowed_mentions={"parse": []},
            reference=message.id,
            type=PINNED_MESSAGE,
        )
        self._fake._publish(notice)
        return no_content()

    async def _unpin(self, request: web.Request) -> web.StreamResponse:
        channel, message = self._pin_target(request)
        if message.pinned:
            message.pinned_at = None
            self._pins_changed(channel, message)
        return no_content()

    async def _get_pins(self, request: web.Request) -> web.StreamResponse:
        """discord.py 2.7's paged pins: newest pin first, ``before`` a pin time."""
        channel = self._fake._channel(path_id(request, "channel_id"))
        pinned = self._pinned(channel)
        if "before" in request.query:
            before = dt.datetime.fromisoformat(request.query["before"])
            pinned = [m for m in pinned if m.pinned_at and m.pinned_at < before]
        limit = max(1, min(int(request.query.get("limit", 50)), 50))
        items = [
            {"pinned_at": iso(m.pinned_at), "message": self._fake._message_payload(m)}
            for m in pinned[:limit]
            if m.pinned_at
        ]
        return json_response({"items": items, "has_more": len(pinned) > limit})

    async def _get_pins_legacy(self, request: web.Request) -> web.StreamResponse:
        channel = self._fake._channel(path_id(request, "channel_id"))
        return json_response([self._fake._message_payload(m) for m in self._pinned(channel)])

    def _pin_target(self, request: web.Request) -> tuple[FakeChannel, FakeMessage]:
        channel = self._fake._channel(path_id(request, "channel_id"))
        if channel.guild_id is not None:
            self._require(self._fake._guild(channel.guild_id), PIN_MESSAGES)
        return channel, self._fake._message(channel.id, path_id(request, "message_id"))

    def _pinned(self, channel: FakeChannel) -> list[FakeMessage]:
        """The channel's pinned messages, the most recently pinned first."""
        pinned = [
            m for m in self._fake.messages.values() if m.channel_id == channel.id and m.pinned
        ]
        return sorted(pinned, key=lambda m: m.pinned_at or now(), reverse=True)

    def _pins_changed(self, channel: FakeChannel, message: FakeMessage) -> None:
        """MESSAGE_UPDATE (``pinned``) then CHANNEL_PINS_UPDATE, as Discord sends them."""
        fake = self._fake
        fake._gateway.emit(
            "MESSAGE_UPDATE",
            fake._message_payload(message, gateway=True),
            intent=fake._messages_intent(message),
        )
        latest = next(iter(self._pinned(channel)), None)
        data: Json = {
            "channel_id": str(channel.id),
            "last_pin_timestamp": iso(latest.pinned_at) if latest and latest.pinned_at else None,
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        intent = GUILDS_INTENT if channel.guild_id is not None else DM_MESSAGES_INTENT
        fake._gateway.emit("CHANNEL_PINS_UPDATE", data, intent=intent)

    # Roles ------------------------------------------------------------------

    async def _create_role(self, request: web.Request) -> web.StreamResponse:
        """A new role just above ``@everyone``, with no permission the bot lacks."""
        guild = self._fake._guild(path_id(request, "guild_id"))
        mine = self._require(guild, MANAGE_ROLES)
        payload = request_body(request).payload
        permissions = int(payload.get("permissions") or guild.everyone.permissions)
        if permissions & ~mine:
            raise missing_permissions()
        if len(guild.roles) >= MAX_ROLES:
            raise ApiError(400, f"Maximum number of guild roles reached ({MAX_ROLES})", 30005)
        colors = payload.get("colors") or {}
        role = guild.add_role(
            payload.get("name") or "new role",
            permissions,
            position=1,
            color=int(colors.get("primary_color") or payload.get("color") or 0),
            hoist=bool(payload.get("hoist")),
            mentionable=bool(payload.get("mentionable")),
        )
        return json_response(role.to_payload())

    async def _add_member_role(self, request: web.Request) -> web.StreamResponse:
        guild, member, role = self._member_role(request)
        guild.give_role(member, role)
        return no_content()

    async def _remove_member_role(self, request: web.Request) -> web.StreamResponse:
        guild, member, role = self._member_role(request)
        guild.take_role(member, role)
        return no_content()

    def _member_role(self, request: web.Request) -> tuple[FakeGuild, FakeMember, FakeRole]:
        """The target of a role change the bot may make: MANAGE_ROLES and a role below its top.

        Administrator does not lift the hierarchy; only the owner is above it.
        """
        guild = self._fake._guild(path_id(request, "guild_id"))
        member = guild.members.get(path_id(request, "user_id"))
        if member is None:
            raise ApiError(404, "Unknown Member", 10007)
        role = guild.roles.get(path_id(request, "role_id"))
        if role is None:
            raise ApiError(404, "Unknown Role", 10011)
        if role is guild.everyone:
            raise ApiError(400, "Invalid Role", 50028)
        self._require(guild, MANAGE_ROLES)
        bot_id = self._fake.bot_user.id
        if role.managed_by is not None or (
            guild.owner_id != bot_id and role.position >= guild.top_role_position(bot_id)
        ):
            raise missing_permissions()
        return guild, member, role

    # Shared -----------------------------------------------------------------

    def _guild_channel(self, request: web.Request) -> tuple[FakeChannel, FakeGuild]:
        channel = self._fake._channel(path_id(request, "channel_id"))
        if channel.guild_id is None:
            raise ApiError(400, "Cannot execute action on a DM channel", 50003)
        return channel, self._fake._guild(channel.guild_id)

    def _require(self, guild: FakeGuild, permission: int) -> int:
        """The bot's permissions in ``guild``, if they include ``permission``."""
        mine = guild.permissions_for(self._fake.bot_user.id)
        if not mine & permission:
            raise missing_permissions()
        return mine


def _name(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 100:
        raise invalid_form_body()
    return value.strip()


def _channel_name(value: object, kind: int) -> str:
    """Discord lower-cases text channel names and turns spaces into dashes."""
    name = _name(value)
    return re.sub(r"\s+", "-", name.lower()) if kind == TEXT_CHANNEL else name


def _topic(payload: Json) -> str | None:
    topic = payload.get("topic")
    if topic is not None and (not isinstance(topic, str) or len(topic) > 1024):
        raise invalid_form_body()
    return topic or None


def _slowmode(payload: Json) -> int:
    value = payload.get("rate_limit_per_user") or 0
    if not isinstance(value, int) or not 0 <= value <= MAX_SLOWMODE:
        raise invalid_form_body()
    return value
