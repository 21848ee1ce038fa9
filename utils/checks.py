"""Permission decorators that apply to both the prefix and the slash form of a command,
and what a member may read."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import discord
from discord import app_commands
from discord.ext import commands

T = TypeVar("T")


def guild_permissions(**perms: bool) -> Callable[[T], T]:
    """Require guild permissions: checked for prefix use, and hidden in Discord's
    slash menu from members who lack them (`default_permissions`)."""

    def decorator(func: T) -> T:
        func = commands.guild_only()(func)
        func = commands.has_guild_permissions(**perms)(func)
        return app_commands.default_permissions(**perms)(func)

    return decorator


def needs_guild(ctx: commands.Context) -> bool:
    """A `cog_check` for a cog whose every command is a server's. The `guild_only` of a
    hybrid group does not do it: discord.py invokes the prefix form of its subcommands
    without the group's checks (hybrid groups are `invoke_without_command`)."""
    if ctx.guild is None:
        raise commands.NoPrivateMessage()
    return True


def channel_permissions(**perms: bool) -> Callable[[T], T]:
    """Require permissions in the channel the command is used in, for a setting of that
    channel: its overwrites count, as they do for what Discord lets members do there (a
    moderator denied Manage Channels in one channel does not manage it through the bot)."""

    def decorator(func: T) -> T:
        # discord.py runs a function's checks in the order of its decorators, the reverse
        # of the order they were added: in a DM, "only in a server" comes first.
        func = commands.has_permissions(**perms)(func)
        return commands.guild_only()(func)

    return decorator


def dm_or_channel_permissions(**perms: bool) -> Callable[[T], T]:
    """Anyone in DMs (it is their own conversation); in a server, these permissions in
    the channel the command is used in (see `channel_permissions`)."""
    in_channel = commands.has_permissions(**perms).predicate

    async def predicate(ctx: commands.Context) -> bool:
        return ctx.guild is None or await in_channel(ctx)

    return commands.check(predicate)


def costly(uses: int, per: float) -> Callable[[T], T]:
    """Allow a costly command `uses` times per `per` seconds per user. The slash form of a
    hybrid command runs the same cooldown, so one decorator covers both forms."""
    return commands.cooldown(uses, per, commands.BucketType.user)


def sees(member: discord.Member, channel: discord.abc.GuildChannel | discord.Thread) -> bool:
    """Whether `member` can see `channel`: View Channel there and, in a private thread,
    being its owner, one of its members the bot knows of, or a manager of threads."""
    return _sees(member, channel, channel.permissions_for(member))


def _sees(
    member: discord.Member,
    channel: discord.abc.GuildChannel | discord.Thread,
    permissions: discord.Permissions,
) -> bool:
    """`sees`, with the member's permissions in the channel worked out already."""
    if not permissions.view_channel:
        return False
    if isinstance(channel, discord.Thread) and channel.is_private():
        return (
            channel.owner_id == member.id
            or any(other.id == member.id for other in channel.members)
            or permissions.manage_threads
        )
    return True


def readable(user: discord.abc.User, here: int | None = None) -> Callable[[int], bool] | None:
    """Whether what was said in a channel, by channel id, may be recalled for `user` in
    `here` (where the answer goes): `user` may read the channel's past messages, and so
    may everyone who reads `here` (a staff member's question in #general does not bring
    back #staff). Remembered for the life of the returned function: one reply. None
    outside a server, where a person's conversations are their own. A channel the bot no
    longer sees (deleted, or a thread it has lost from view) is unreadable; a private
    thread is readable by its owner, its members the bot knows of, and those who manage
    threads, and by whoever writes in it: without the members intent the bot knows of
    few of its members."""
    if not isinstance(user, discord.Member):
        return None
    guild = user.guild
    audience = None if here is None else _Audience(guild.get_channel_or_thread(here))

    @functools.cache
    def can_read(channel_id: int) -> bool:
        channel = guild.get_channel_or_thread(channel_id)
        if channel is None or isinstance(channel, discord.CategoryChannel):
            return False
        permissions = channel.permissions_for(user)
        if not (permissions.read_messages and permissions.read_message_history):
            return False
        if channel_id == here:
            return True
        return _sees(user, channel, permissions) and (audience is None or audience.reads(channel))

    return can_read


class _Audience:
    """Who reads the channel an answer goes to, by the roles and members its permissions
    let in, and whether they all may read another channel's history. Each role is taken
    with @everyone alone (a member who reads only through two roles together is not
    looked at); a member let in by an overwrite of their own whom the bot does not know
    makes the audience unknown: no other channel is recalled there."""

    def __init__(self, here: discord.abc.GuildChannel | discord.Thread | None) -> None:
        # A thread is read by those who read its channel (a private one, by fewer).
        self.place = here.parent if isinstance(here, discord.Thread) else here
        self._readers: list[discord.Role | discord.Member] | None = None
        # By a channel's kind and overwrites, all that its permissions depend on: channels
        # synced with one category, or with none at all, are asked about once.
        self._verdicts: dict[tuple[object, ...], bool] = {}

    def reads(self, channel: discord.abc.GuildChannel | discord.Thread) -> bool:
        if self.place is None:
            return False  # a channel the bot no longer sees: who reads it is unknown
        if isinstance(channel, discord.Thread):
            if channel.is_private():
                return False  # read by its members, whom no role tells
            if channel.parent is None:
                return False
            channel = channel.parent
        if channel.id == self.place.id:
            return True
        readers = self._who(self.place)
        if readers is None:
            return False
        shape = (type(channel), *((o.id, o.type, o.allow, o.deny) for o in channel._overwrites))
        if (verdict := self._verdicts.get(shape)) is None:
            reads = _reads_in(channel)
            verdict = all(reads(reader) for reader in readers)
            self._verdicts[shape] = verdict
        return verdict

    def _who(self, place: discord.abc.GuildChannel) -> list[discord.Role | discord.Member] | None:
        if self._readers is None:
            reads = _reads_in(place)
            readers: list[discord.Role | discord.Member] = [
                role for role in place.guild.roles if reads(role)
            ]
            for overwrite in place._overwrites:  # as in `_reads_in`
                allowed = discord.Permissions(overwrite.allow)
                if not overwrite.is_member() or not allowed.view_channel:
                    continue
                if (member := place.guild.get_member(overwrite.id)) is None:
                    return None  # a member the bot does not know of
                readers.append(member)
            self._readers = readers
        return self._readers


# What of a role's server permissions decides whether it reads a channel's history.
_READING = discord.Permissions(
    administrator=True, read_messages=True, read_message_history=True
).value


def _kind(role: discord.Role) -> int:
    """Roles of one kind read a channel alike, unless an overwrite of their own there
    tells them apart: a role's permissions in a channel are @everyone's and its own
    server permissions, then the overwrites of @everyone and of the role
    (`permissions_for`), and of those permissions only these bits bear on reading."""
    return role._permissions & _READING  # its stored bits: `permissions` makes an object


def _reads_in(channel: discord.abc.GuildChannel) -> Callable[[discord.Role | discord.Member], bool]:
    """Whether a role or member may read `channel`'s history, worked out once for readers
    alike there: roles of one kind (`_kind`) with no overwrite of their own in the
    channel, so a server of many roles costs a few checks a channel, not one a role."""
    # discord.py's stored overwrites: its `overwrites` makes an object of each (~20 µs).
    overwritten = {overwrite.id for overwrite in channel._overwrites}
    verdicts: dict[tuple[bool, int], bool] = {}

    def reads(reader: discord.Role | discord.Member) -> bool:
        if isinstance(reader, discord.Role) and reader.id not in overwritten:
            key = (True, _kind(reader))
        else:
            key = (False, reader.id)
        if (verdict := verdicts.get(key)) is None:
            permissions = channel.permissions_for(reader)
            verdict = permissions.read_messages and permissions.read_message_history
            verdicts[key] = verdict
        return verdict

    return reads
