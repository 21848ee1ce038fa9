"""Records of the fake Discord world and their Discord-shaped JSON payloads.

These are the objects tests hold (users, roles, channels, messages, interactions; the
guild is in :mod:`tests.fakes.discord_guild`) and :class:`RequestRecord`.  Each renders
itself as Discord's API does; what needs the whole world (messages, interactions) is
rendered by :class:`tests.fakes.discord_server.FakeDiscord`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import discord

Json = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000

TEXT_CHANNEL = 0
DM_CHANNEL = 1
VOICE_CHANNEL = 2
CATEGORY_CHANNEL = 4
NEWS_CHANNEL = 5
NEWS_THREAD = 10
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (NEWS_THREAD, PUBLIC_THREAD, PRIVATE_THREAD)

EPHEMERAL = 1 << 6
LOADING = 1 << 7

EVERYONE_PERMS = discord.Permissions(
    create_instant_invite=True,
    add_reactions=True,
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_external_emojis=True,
    connect=True,
    speak=True,
    use_voice_activation=True,
    change_nickname=True,
    use_application_commands=True,
).value
"""What ``@everyone`` may do in every fake guild."""

DEFAULT_PERMS = EVERYONE_PERMS
"""The default bitfield of a member's personal role."""

ADMINISTRATOR = discord.Permissions(administrator=True).value
ALL_PERMS = discord.Permissions.all().value

GUILDS_INTENT = discord.Intents(guilds=True).value
MEMBERS_INTENT = discord.Intents(members=True).value
GUILD_MESSAGES_INTENT = discord.Intents(guild_messages=True).value
DM_MESSAGES_INTENT = discord.Intents(dm_messages=True).value
MESSAGE_CONTENT_INTENT = discord.Intents(message_content=True).value
PRESENCES_INTENT = discord.Intents(presences=True).value


def iso(moment: dt.datetime) -> str:
    """Discord's timestamp format (ISO 8601 with an explicit UTC offset)."""
    return moment.isoformat()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Snowflakes:
    """Unique, increasing snowflakes whose timestamps are the current time.

    Real ids matter: discord.py turns ``history(after=datetime)`` into a snowflake,
    so a counter detached from the clock would break time-based queries.
    """

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        stamp = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(self._last + 1, stamp)
        return self._last

    def on_shard(self, shard: int, shard_count: int) -> int:
        """The next snowflake whose shard (``(id >> 22) % shard_count``, the timestamp's
        milliseconds) is ``shard``: ids made in one millisecond would share a shard, so
        the timestamp moves up to ``shard_count - 1`` ms ahead."""
        candidate = self()
        ahead = (shard - (candidate >> 22)) % shard_count
        if ahead:
            candidate = ((candidate >> 22) + ahead) << 22
            self._last = candidate
        return candidate


@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    bot: bool = False

    def to_payload(self) -> Json:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None if self.bot else self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(eq=False)
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int
    managed_by: int | None = None
    """The bot user id for a bot's managed role."""
    color: int = 0
    hoist: bool = False
    mentionable: bool = False

    def to_payload(self) -> Json:
        payload: Json = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": dict(primary_color=self.color, secondary_color=None, tertiary_color=None),
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "managed": self.managed_by is not None,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.managed_by is not None:
            payload["tags"] = {"bot_id": str(self.managed_by)}
        return payload


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    roles: list[FakeRole]
    """Roles besides ``@everyone``; the first is the member's personal role."""
    joined_at: dt.datetime = field(default_factory=now)

    def to_payload(self, *, with_user: bool = True) -> Json:
        payload: Json = {
            "roles": [str(role.id) for role in self.roles],
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = self.user.to_payload()
        return payload


@dataclass(eq=False)
class FakeChannel:
    id: int
    name: str
    type: int
    guild_id: int | None = None
    position: int = 0
    recipient: FakeUser | None = None
    """The other user of a DM channel."""
    topic: str | None = None
    rate_limit_per_user: int = 0
    parent_id: int | None = None
    """The category of a channel, the channel of a thread."""
    owner_id: int | None = None
    """Who started a thread."""
    archived: bool = False
    """An archived thread: Discord leaves it out of GUILD_CREATE, so it is not cached."""
    locked: bool = False
    """A locked thread: only those who may manage threads write in it."""
    created: dt.datetime = field(default_factory=now)
    overwrites: list[Json] = field(default_factory=list)
    """Permission overwrites as Discord sends them (`FakeGuild.set_overwrite`)."""
    user_limit: int = 0
    """How many may be in a voice or Stage channel at once (0: no limit)."""

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def to_payload(self) -> Json:
        if self.type == DM_CHANNEL:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": DM_CHANNEL,
                "recipients": [self.recipient.to_payload()],
                "last_message_id": None,
            }
        payload: Json = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "guild_id": str(self.guild_id),
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "rate_limit_per_user": self.rate_limit_per_user,
            "flags": 0,
        }
        if self.is_thread:
            payload.update(
                owner_id=str(self.owner_id),
                last_message_id=None,
                message_count=0,
                member_count=1,
                total_message_sent=0,
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": iso(self.created),
                    "locked": self.locked,
                    "invitable": True,
                    "create_timestamp": iso(self.created),
                },
            )
            return payload
        payload.update(position=self.position, permission_overwrites=self.overwrites, nsfw=False)
        if self.type == VOICE_CHANNEL:
            payload.update(
                bitrate=64_000, user_limit=self.user_limit, rtc_region=None, last_message_id=None
            )
        elif self.type != CATEGORY_CHANNEL:
            payload.update(topic=self.topic, last_message_id=None)
        return payload


@dataclass
class UploadedFile:
    """One file part of a multipart request."""

    filename: str
    data: bytes
    content_type: str | None


@dataclass(eq=False)
class FakeAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str

    def to_payload(self) -> Json:
        payload: Json = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            payload["content_type"] = self.content_type
        return payload


@dataclass(eq=False)
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str
    from_bot: bool
    """Created by the bot through REST (directly, as an interaction or via its webhook)."""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    stickers: list[Json] = field(default_factory=list)
    """Sticker items: ``{id, name, format_type}``."""
    forwarded: list[Json] = field(default_factory=list)
    """Message snapshots of a forward: ``{"message": {content, attachments, ...}}``."""
    poll: Json | None = None
    allowed_mentions: Json | None = None
    reference: int | None = None
    """The id of the message this one replies to."""
    webhook_id: int | None = None
    avatar_url: str | None = None
    """The avatar override of a webhook message."""
    interaction_id: int | None = None
    flags: int = 0
    mentions: list[FakeUser] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    timestamp: dt.datetime = field(default_factory=now)
    edited_timestamp: dt.datetime | None = None
    edits: list[Json] = field(default_factory=list)
    """Every PATCH payload applied to the message, in order."""
    history: list[str] = field(default_factory=list)
    """Every version of ``content``, the first one included."""
    deleted: bool = False
    reactions: dict[str, list[int]] = field(default_factory=dict)
    """Emoji -> ids of the users who reacted (``"name:id"`` for custom emoji)."""
    pinned_at: dt.datetime | None = None
    type: int = 0
    """Set for system messages (6: "pinned a message"); replies are sent as 19."""
    token: str | None = None
    """The bot token of the REST call that created it: which bot process sent it."""

    def __post_init__(self) -> None:
        self.history.append(self.content)

    @property
    def pinned(self) -> bool:
        return self.pinned_at is not None

    @property
    def loading(self) -> bool:
        """A deferred interaction response nobody has filled in yet."""
        return bool(self.flags & LOADING)

    def find_component(self, custom_id: str) -> Json | None:
        """The component (button, select, ...) with ``custom_id``, searched recursively."""
        stack = list(self.components)
        while stack:
            component = stack.pop()
            if component.get("custom_id") == custom_id:
                return component
            stack.extend(component.get("components", []))
            if "accessory" in component:
                stack.append(component["accessory"])
        return None


@dataclass(eq=False)
class FakeInteraction:
    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    user: FakeUser
    data: Json
    message: FakeMessage | None = None
    """The message whose component was used."""
    responses: list[Json] = field(default_factory=list)
    """Callback payloads (``{"type": ..., "data": ...}``), in order."""
    followups: list[FakeMessage] = field(default_factory=list)
    original: FakeMessage | None = None
    """The message a type 4/5 response created, or the component message for 6/7."""
    expired: bool = False
    """Its token no longer works (on Discord, 15 minutes after the interaction)."""
    _answered: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def ephemeral(self) -> bool:
        if not self.responses:
            return False
        return bool((self.responses[0].get("data") or {}).get("flags", 0) & EPHEMERAL)

    def record_response(self, payload: Json) -> None:
        self.responses.append(payload)
        self._answered.set()

    async def wait_response(
        self,
        timeout: float = 5,  # noqa: ASYNC109 (test API: a timeout fails the test)
    ) -> Json:
        """The first callback payload, waiting for the bot to send it."""
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        except TimeoutError:
            name = self.data.get("name") or self.data.get("custom_id")
            raise AssertionError(
                f"interaction {name!r} got no callback within {timeout}s"
            ) from None
        return self.responses[0]


@dataclass(eq=False)
class FakeWebhook:
    id: int
    token: str
    channel_id: int
    guild_id: int
    name: str
    creator: FakeUser

    def to_payload(self) -> Json:
        return {
            "id": str(self.id),
            "type": 1,
            "token": self.token,
            "channel_id": str(self.channel_id),
            "guild_id": str(self.guild_id),
            "name": self.name,
            "avatar": None,
            "application_id": None,
            "user": self.creator.to_payload(),
        }


@dataclass
class RequestRecord:
    method: str
    path: str
    """The path below ``/api/v10``, e.g. ``/channels/123/messages``."""
    query: dict[str, str]
    json: Any
    """The JSON body, or the ``payload_json`` part of a multipart body."""
    time: float
    """``time.monotonic()`` when the request arrived."""
    files: list[UploadedFile] = field(default_factory=list)
    reason: str | None = None
    """The ``X-Audit-Log-Reason`` header, unquoted."""
    token: str | None = None
    """The bot token it was made with (``Authorization: Bot …``): which process made it."""
