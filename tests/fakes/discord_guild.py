"""A fake guild: its roles, channels, threads and members, pushed to the bot as they change."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from tests.fakes.discord_models import (
    ADMINISTRATOR,
    ALL_PERMS,
    CATEGORY_CHANNEL,
    DEFAULT_PERMS,
    EVERYONE_PERMS,
    GUILDS_INTENT,
    MEMBERS_INTENT,
    PUBLIC_THREAD,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    FakeChannel,
    FakeMember,
    FakeRole,
    FakeUser,
    Json,
    iso,
    now,
)

Emit = Callable[..., None]

STAGE_CHANNEL = 13


@dataclass(eq=False)
class FakeStageChannel(FakeChannel):
    """A Stage channel: who joins it is in the audience (suppressed) until they may speak."""

    def to_payload(self) -> Json:
        payload = super().to_payload()
        payload.update(bitrate=64_000, user_limit=self.user_limit, rtc_region=None)
        return payload


class FakeGuild:
    """A guild with ``@everyone``, a default ``text`` and ``voice`` channel and members.

    Once the bot knows the guild, changes are pushed to it as gateway events.
    Role positions stay unique: 0 is ``@everyone``, higher is more powerful.
    """

    def __init__(
        self, id: int, name: str, owner_id: int, new_id: Callable[[], int], *, bot_id: int
    ) -> None:
        self.id = id
        self.name = name
        self.owner_id = owner_id
        self.bot_id = bot_id
        self._new_id = new_id
        self._emit: Emit | None = None
        self.everyone = FakeRole(id, "@everyone", EVERYONE_PERMS, position=0)
        self.roles: dict[int, FakeRole] = {id: self.everyone}
        self.channels: dict[int, FakeChannel] = {}
        self.threads: dict[int, FakeChannel] = {}
        self.members: dict[int, FakeMember] = {}
        self.text = self.add_text_channel("general")
        self.voice = self.add_voice_channel("General")

    def __repr__(self) -> str:
        return f"<FakeGuild id={self.id} name={self.name!r}>"

    def go_live(self, emit: Emit) -> None:
        """From now on, push changes to the bot through ``emit(event, data, intent=...)``."""
        self._emit = emit

    def add_text_channel(self, name: str) -> FakeChannel:
        return self.add_channel(name, TEXT_CHANNEL)

    def add_voice_channel(self, name: str) -> FakeChannel:
        return self.add_channel(name, VOICE_CHANNEL)

    def add_stage_channel(self, name: str) -> FakeChannel:
        stage = FakeStageChannel(
            self._new_id(), name, STAGE_CHANNEL, self.id, position=len(self.channels)
        )
        self.channels[stage.id] = stage
        self._push("CHANNEL_CREATE", stage.to_payload(), intent=GUILDS_INTENT)
        return stage

    def add_category(self, name: str) -> FakeChannel:
        return self.add_channel(name, CATEGORY_CHANNEL)

    def add_channel(self, name: str, type: int, **fields: Any) -> FakeChannel:
        """A channel at the bottom of the list (``fields``: topic, slowmode, parent)."""
        channel = FakeChannel(
            self._new_id(), name, type, self.id, position=len(self.channels), **fields
        )
        self.channels[channel.id] = channel
        self._push("CHANNEL_CREATE", channel.to_payload(), intent=GUILDS_INTENT)
        return channel

    def add_thread(
        self,
        parent: FakeChannel,
        name: str,
        owner: FakeUser,
        *,
        type: int = PUBLIC_THREAD,
        thread_id: int | None = None,
        rate_limit_per_user: int = 0,
    ) -> FakeChannel:
        """A thread of ``parent`` (``thread_id``: the message it starts from)."""
        thread = FakeChannel(
            thread_id or self._new_id(),
            name,
            type,
            self.id,
            parent_id=parent.id,
            owner_id=owner.id,
            rate_limit_per_user=rate_limit_per_user,
        )
        self.threads[thread.id] = thread
        self._push(
            "THREAD_CREATE", {**thread.to_payload(), "newly_created": True}, intent=GUILDS_INTENT
        )
        return thread

    def channel_updated(self, channel: FakeChannel) -> None:
        """Tell the bot ``channel`` (or thread) changed."""
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        self._push(event, channel.to_payload(), intent=GUILDS_INTENT)

    def set_overwrite(
        self, channel: FakeChannel, target: int, *, allow: int = 0, deny: int = 0, member: bool
    ) -> None:
        """Allow and deny permissions in ``channel`` for a member or a role (``target``; the
        guild's id is @everyone), replacing its overwrite there, and tell the bot."""
        kind = 1 if member else 0
        channel.overwrites = [
            o for o in channel.overwrites if (o["id"], o["type"]) != (str(target), kind)
        ]
        channel.overwrites.append(
            {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}
        )
        self.channel_updated(channel)

    def delete_channel(self, channel: FakeChannel) -> None:
        del self.channels[channel.id]
        self._push("CHANNEL_DELETE", channel.to_payload(), intent=GUILDS_INTENT)

    def add_role(
        self,
        name: str,
        permissions: int = 0,
        *,
        position: int | None = None,
        managed_by: int | None = None,
        **fields: Any,
    ) -> FakeRole:
        """A role at ``position`` (default: the top), moving the roles from there up one.

        ``fields``: color, hoist, mentionable.
        """
        top = len(self.roles)
        position = top if position is None else max(1, min(position, top))
        for role in sorted(self.roles.values(), key=lambda r: r.position):
            if role.position >= position:
                role.position += 1
                self._push("GUILD_ROLE_UPDATE", {"role": role.to_payload()}, intent=GUILDS_INTENT)
        role = FakeRole(self._new_id(), name, permissions, position, managed_by, **fields)
        self.roles[role.id] = role
        self._push("GUILD_ROLE_CREATE", {"role": role.to_payload()}, intent=GUILDS_INTENT)
        return role

    def delete_role(self, role: FakeRole) -> None:
        """A moderator deletes ``role``: members lose it (GUILD_ROLE_DELETE, as Discord
        sends no member updates for it)."""
        del self.roles[role.id]
        for member in self.members.values():
            if role in member.roles:
                member.roles.remove(role)
        self._push("GUILD_ROLE_DELETE", {"role_id": str(role.id)}, intent=GUILDS_INTENT)

    def give_role(self, who: FakeMember | FakeUser, role: FakeRole) -> FakeMember:
        member = self._as_member(who)
        if role not in member.roles:
            member.roles.append(role)
            self._member_updated(member)
        return member

    def take_role(self, who: FakeMember | FakeUser, role: FakeRole) -> FakeMember:
        member = self._as_member(who)
        if role in member.roles:
            member.roles.remove(role)
            self._member_updated(member)
        return member

    def top_role_position(self, user_id: int) -> int:
        """The position of the member's highest role (0: only ``@everyone``)."""
        return max((role.position for role in self.members[user_id].roles), default=0)

    def add_member(
        self, user: FakeUser, *, permissions: int = DEFAULT_PERMS, managed: bool = False
    ) -> FakeMember:
        """Make ``user`` a member whose personal role grants ``permissions``.

        Adding an existing member replaces the permissions of their personal role.
        """
        if user.id in self.members:
            member = self.members[user.id]
            member.roles[0].permissions = permissions
            self._push(
                "GUILD_ROLE_UPDATE", {"role": member.roles[0].to_payload()}, intent=GUILDS_INTENT
            )
            return member
        role = self.add_role(user.name, permissions, managed_by=user.id if managed else None)
        member = self.members[user.id] = FakeMember(user, [role])
        self._push("GUILD_MEMBER_ADD", member.to_payload(), intent=MEMBERS_INTENT)
        return member

    def permissions_for(self, user_id: int) -> int:
        """The member's guild-wide permissions (no channel overwrites exist here)."""
        if user_id == self.owner_id:
            return ALL_PERMS
        value = self.everyone.permissions
        for role in self.members[user_id].roles:
            value |= role.permissions
        return ALL_PERMS if value & ADMINISTRATOR else value

    def to_payload(self, *, member_ids: Collection[int] | None = None) -> Json:
        """The full guild object of a GUILD_CREATE event.

        ``member_ids`` limits the ``members`` list, as Discord does without the
        presences intent (only the bot itself is sent; the rest needs chunking).
        """
        members = [
            m for m in self.members.values() if member_ids is None or m.user.id in member_ids
        ]
        return {
            "id": str(self.id),
            "name": self.name,
            "owner_id": str(self.owner_id),
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "features": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": str(self.text.id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "application_id": None,
            "vanity_url_code": None,
            "max_members": 500_000,
            "max_video_channel_users": 25,
            "premium_progress_bar_enabled": False,
            "joined_at": iso(now()),
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "roles": [role.to_payload() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "channels": [channel.to_payload() for channel in self.channels.values()],
            "members": [member.to_payload() for member in members],
            "voice_states": [],
            "presences": [],
            "threads": [t.to_payload() for t in self.threads.values() if not t.archived],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _as_member(self, who: FakeMember | FakeUser) -> FakeMember:
        return who if isinstance(who, FakeMember) else self.members[who.id]

    def _member_updated(self, member: FakeMember) -> None:
        """GUILD_MEMBER_UPDATE: needs the members intent, except for the bot itself."""
        intent = None if member.user.id == self.bot_id else MEMBERS_INTENT
        self._push("GUILD_MEMBER_UPDATE", member.to_payload(), intent=intent)

    def _push(self, event: str, data: Json, *, intent: int | None = None) -> None:
        if self._emit is not None:
            self._emit(event, {**data, "guild_id": str(self.id)}, intent=intent)
