"""Tools that change the server for the person asking: channels, threads, names, slowmode,
pins, and harmless roles for themselves. Off until a server turns them on
(`/ai tools server on`).

Each runs only if the asker holds the matching permission where Discord checks it, and
the bot does too: in the asker's channel for threads and pins (the toolbox checks it); in
the channel, thread (Manage Threads) or category acted on; server-wide for roles and for
channels outside a category, so Manage Roles or Manage Channels from one channel's
overwrite (a ticket's owner) reaches no further than that channel. Only what is here
exists: no tool deletes, kicks, bans, times out, touches webhooks or server settings, or
changes another member's roles, so no request can reach those. Channels and roles named
by the model are looked up in the asker's server among the ones they can see; of several
of one name, the one they may act on is meant (still several: the model asks which).
Every change carries an audit-log reason naming the asker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

import discord
from pydantic import BaseModel, ConfigDict, Field

from cogs.ai.tools import roles
from cogs.ai.tools.places import (
    editing,
    find_channel,
    find_roles,
    require,
    require_server,
    target,
)
from utils.tools import Asker, Done, Family, Tool, ToolRefused, shown

SLOWMODE_MAX = 21_600  # Discord's limit: six hours
_ID = r"^\d{15,21}$"
_PLACE = 110  # characters naming a channel: a mention, an id, or a name (100 at most) and #

P = TypeVar("P", bound=BaseModel)
_RENAMABLE = (
    discord.TextChannel,
    discord.VoiceChannel,
    discord.StageChannel,
    discord.ForumChannel,
    discord.CategoryChannel,
    discord.Thread,
)


class _Args(BaseModel):
    """Arguments the model may pass; anything else (a member to act on...) is refused.
    Names are taken without the spaces around them (a blank one is no name)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _reason(asker: Asker) -> str:
    """The audit-log reason of every change: who it was done for."""
    return f"AI tool for {asker.user.name} ({asker.user.id})"


# Channels and threads ------------------------------------------------------------------


class CreateChannelIn(_Args):
    name: str = Field(min_length=1, max_length=100, description="The new channel's name")
    kind: Literal["text", "voice"] = "text"
    category: str | None = Field(
        default=None,
        max_length=_PLACE,
        description="An existing category to put it in (its name)",
    )


async def create_channel(asker: Asker, args: CreateChannelIn) -> Done:
    member = asker.member()
    category = None
    if args.category:
        found = find_channel(member, args.category, category=True)
        if not isinstance(found, discord.CategoryChannel):
            raise ToolRefused(f"#{found.name} is not a category.")
        require(found, member, "manage_channels")
        category = found
    else:
        require_server(member, "manage_channels")
    guild, reason = member.guild, _reason(asker)
    if args.kind == "voice":
        channel = await guild.create_voice_channel(args.name, category=category, reason=reason)
    else:
        channel = await guild.create_text_channel(args.name, category=category, reason=reason)
    result = {"created": channel.mention, "name": channel.name, "kind": args.kind}
    if category is not None:
        result["category"] = category.name
    note = f"📁 created {'🔊' if args.kind == 'voice' else '#'}{shown(channel.name)}"
    return Done(result, note=note, outside=category is not None)


class CreateThreadIn(_Args):
    name: str = Field(min_length=1, max_length=100, description="The thread's name")
    message_id: str | None = Field(
        default=None, pattern=_ID, description="Start it from this message of the channel (id)"
    )


async def create_thread(asker: Asker, args: CreateThreadIn) -> Done:
    channel = asker.channel
    if not isinstance(channel, discord.TextChannel):
        raise ToolRefused("Threads can only be started in a text channel, not here.")
    reason = _reason(asker)
    if args.message_id:
        message = await _message(channel, args.message_id)
        thread = await message.create_thread(name=args.name, reason=reason)
    else:
        # In an announcement channel Discord makes only announcement threads.
        kind = discord.ChannelType.public_thread
        if channel.is_news():
            kind = discord.ChannelType.news_thread
        thread = await channel.create_thread(name=args.name, type=kind, reason=reason)
    note = f"🧵 started #{shown(thread.name)}"
    return Done({"created": thread.mention, "name": thread.name}, note=note)


class RenameIn(_Args):
    name: str = Field(min_length=1, max_length=100, description="The new name")
    channel: str | None = Field(
        default=None,
        max_length=_PLACE,
        description="The channel to rename (#name); default: this one",
    )


async def rename_channel(asker: Asker, args: RenameIn) -> Done:
    member = asker.member()
    channel = target(asker, args.channel)
    if not isinstance(channel, _RENAMABLE):
        raise ToolRefused(f"#{channel.name} cannot be renamed by the AI.")
    require(channel, member, editing(channel))
    old = channel.name
    edited = await channel.edit(name=args.name, reason=_reason(asker))
    new = edited.name if edited is not None else args.name
    note = f"✏️ renamed #{shown(old)} to #{shown(new)}"
    return Done({"renamed": channel.mention, "from": old, "to": new}, note=note, outside=True)


class SlowmodeIn(_Args):
    seconds: int = Field(ge=0, le=SLOWMODE_MAX, description="Seconds between messages; 0: off")
    channel: str | None = Field(
        default=None, max_length=_PLACE, description="Which channel (#name); default: this"
    )


async def set_slowmode(asker: Asker, args: SlowmodeIn) -> Done:
    member = asker.member()
    channel = target(asker, args.channel)
    if not isinstance(
        channel,
        discord.TextChannel
        | discord.VoiceChannel
        | discord.StageChannel
        | discord.ForumChannel  # between posts
        | discord.Thread,
    ):
        raise ToolRefused(f"#{channel.name} has no slowmode.")
    require(channel, member, editing(channel))
    await channel.edit(slowmode_delay=args.seconds, reason=_reason(asker))
    where = shown(channel.name)
    note = (
        f"🐢 slowmode {args.seconds}s in #{where}"
        if args.seconds
        else f"🐇 slowmode off in #{where}"
    )
    return Done({"channel": channel.mention, "slowmode_seconds": args.seconds}, note=note)


# Pins ----------------------------------------------------------------------------------


class PinIn(_Args):
    message_id: str | None = Field(
        default=None,
        pattern=_ID,
        description="The message's id; default: the message the person replied to",
    )


async def _message(channel: discord.abc.Messageable, message_id: str) -> discord.Message:
    try:
        return await channel.fetch_message(int(message_id))
    except discord.NotFound as error:
        raise ToolRefused(f"There is no message {message_id} in this channel.") from error


async def _pintarget(asker: Asker, message_id: str | None) -> discord.Message:
    """The message named, else the one the asker's message replies to (in their channel)."""
    if message_id is None:
        reference = asker.message.reference if asker.message else None
        if reference is None or reference.message_id is None:
            raise ToolRefused("Which message? Reply to it when asking, or give its id.")
        if reference.channel_id != asker.channel.id:
            raise ToolRefused("Only messages in this channel can be pinned from here.")
        message_id = str(reference.message_id)
    return await _message(asker.channel, message_id)


async def pin_message(asker: Asker, args: PinIn) -> Done:
    message = await _pintarget(asker, args.message_id)
    if message.pinned:  # Discord would answer as if it had pinned it
        return Done({"message": str(message.id), "pinned": False, "why": "it is already pinned"})
    await message.pin(reason=_reason(asker))
    return Done({"pinned": str(message.id)}, note="📌 pinned a message")


async def unpin_message(asker: Asker, args: PinIn) -> Done:
    message = await _pintarget(asker, args.message_id)
    if not message.pinned:
        return Done({"message": str(message.id), "unpinned": False, "why": "it is not pinned"})
    await message.unpin(reason=_reason(asker))
    return Done({"unpinned": str(message.id)}, note="📍 unpinned a message")


# Roles ---------------------------------------------------------------------------------


class CreateRoleIn(_Args):
    name: str = Field(min_length=1, max_length=100, description="The role's name")
    permissions: list[Annotated[str, Field(max_length=60)]] = Field(
        default_factory=list,
        max_length=30,
        description="Permissions it grants (e.g. send_messages, connect); only harmless ones "
        "are allowed. Empty: none beyond @everyone's",
    )
    colour: str | None = Field(default=None, pattern=r"^#?[0-9a-fA-F]{6}$", description="#rrggbb")


async def create_role(asker: Asker, args: CreateRoleIn) -> Done:
    member = asker.member()
    require_server(member, "manage_roles")
    permissions = roles.requested(args.permissions)
    roles.require_safe(permissions, "a role made by the AI")
    roles.require_held(permissions, member, member.display_name)
    roles.require_held(permissions, member.guild.me, "The bot")
    colour = discord.Colour(int(args.colour.lstrip("#"), 16)) if args.colour else None
    role = await member.guild.create_role(
        name=args.name,
        permissions=permissions,
        colour=colour or discord.Colour.default(),
        mentionable=False,
        reason=_reason(asker),
    )
    result = {"created": role.name, "permissions": roles.attributes(permissions)}
    return Done(result, note=f"🏷️ created {shown('@' + role.name)}")


class RoleIn(_Args):
    role: str = Field(min_length=1, max_length=100, description="The role's name (or its id)")


def _assignable(role: discord.Role, member: discord.Member) -> bool:
    try:
        roles.require_assignable(role, member)
    except ToolRefused:
        return False
    return True


def _role(member: discord.Member, text: str, *, held: bool) -> discord.Role:
    """The role named, to give (`held`: False) or take (True). Of several roles of that
    name, the one the asker may assign, preferring the one they lack (to give) or hold
    (to take), as they would mean; none they may assign: the highest one's refusal; still
    more than one: the model is asked which, by id."""
    found = find_roles(member.guild, text)
    allowed = [role for role in found if _assignable(role, member)]
    if not allowed:
        roles.require_assignable(found[0], member)  # says why not
    wanted = [role for role in allowed if (role in member.roles) == held] or allowed
    if len(wanted) > 1:
        ids = ", ".join(str(role.id) for role in wanted)
        raise ToolRefused(
            f"{len(wanted)} roles are named @{wanted[0].name}; ask which is meant, then "
            f"name it by its id ({ids})."
        )
    return wanted[0]


async def give_role(asker: Asker, args: RoleIn) -> Done:
    member = asker.member()
    require_server(member, "manage_roles")
    role = _role(member, args.role, held=False)
    if role in member.roles:
        return Done(
            {"role": role.name, "given": False, "why": "they already have it"}, outside=True
        )
    await member.add_roles(role, reason=_reason(asker))
    note = f"🏷️ gave you {shown('@' + role.name)}"
    return Done({"role": role.name, "given": True}, note=note, outside=True)


async def take_role(asker: Asker, args: RoleIn) -> Done:
    member = asker.member()
    require_server(member, "manage_roles")
    role = _role(member, args.role, held=True)
    if role not in member.roles:
        return Done({"role": role.name, "taken": False, "why": "they do not have it"}, outside=True)
    await member.remove_roles(role, reason=_reason(asker))
    note = f"🏷️ took {shown('@' + role.name)} from you"
    return Done({"role": role.name, "taken": True}, note=note, outside=True)


def _tool(
    name: str,
    description: str,
    run: Callable[[Asker, P], Awaitable[Done]],
    params: type[P],
    *,
    in_channel: str | None = None,
) -> Tool[P]:
    """A server action: it changes things. `in_channel`: the permission the asker and the
    bot need in the asker's channel (the toolbox checks it); an action on the server, on a
    category or on a channel it names checks its permission there itself
    (`require_server`, `require`)."""
    permissions = (in_channel,) if in_channel else ()
    return Tool(
        name,
        description,
        Family.SERVER,
        run,
        params,
        asker_permissions=permissions,
        bot_permissions=permissions,
        changes=True,
    )


TOOLS: list[Tool] = [
    _tool(
        "create_channel",
        "Create a text or voice channel, optionally in a category.",
        create_channel,
        CreateChannelIn,  # Manage Channels server-wide, or in the category named
    ),
    _tool(
        "create_thread",
        "Start a public thread in this channel, optionally from one of its messages.",
        create_thread,
        CreateThreadIn,
        in_channel="create_public_threads",
    ),
    _tool(
        "rename_channel",
        "Rename a channel (default: this one).",
        rename_channel,
        RenameIn,  # Manage Channels (Manage Threads for a thread) in the one renamed
    ),
    _tool(
        "set_slowmode",
        "Set a channel's slowmode in seconds (0 turns it off; at most 21600).",
        set_slowmode,
        SlowmodeIn,  # as for renaming: in the channel or thread it is set in
    ),
    _tool(
        "pin_message",
        "Pin a message of this channel (default: the one the person replied to).",
        pin_message,
        PinIn,
        in_channel="pin_messages",
    ),
    _tool(
        "unpin_message",
        "Unpin a message of this channel (default: the one the person replied to).",
        unpin_message,
        PinIn,
        in_channel="pin_messages",
    ),
    _tool(
        "create_role",
        "Create a role with harmless permissions only (no moderation or admin permission).",
        create_role,
        CreateRoleIn,  # Manage Roles server-wide, as for giving and taking roles
    ),
    _tool(
        "give_role",
        "Give the person asking one of the server's harmless roles (only to them).",
        give_role,
        RoleIn,
    ),
    _tool(
        "take_role",
        "Take one of the server's harmless roles from the person asking (only from them).",
        take_role,
        RoleIn,
    ),
]
