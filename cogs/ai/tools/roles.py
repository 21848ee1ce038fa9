"""Which roles the AI may make or hand out: an allowlist of harmless permissions, and the
hierarchy rules Discord applies to people, applied to the asker.

A role the AI creates, gives or takes carries only permissions on `SAFE`, in the server
and in every channel's overwrites; anything else (administrator, manage server, kick,
ban, timeout, webhooks, @everyone pings, managing channels, messages or roles, ...) is
refused by name, whatever the request says, so no wording can make the AI hand out power.
"""

from __future__ import annotations

import re

import discord

from utils.checks import sees
from utils.tools import ToolRefused

SAFE = discord.Permissions(
    view_channel=True,
    read_message_history=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    create_private_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    use_external_stickers=True,
    use_application_commands=True,
    use_external_apps=True,
    send_voice_messages=True,
    send_polls=True,
    change_nickname=True,
    connect=True,
    speak=True,
    stream=True,
    use_voice_activation=True,
    use_embedded_activities=True,
    use_soundboard=True,
    use_external_sounds=True,
    request_to_speak=True,
)
"""What a role made or handed out by the AI may allow: taking part, never moderating."""

# Names people (and models) use for permissions, where they differ from discord.py's.
_ALIASES = {
    "admin": "administrator",
    "manage_server": "manage_guild",
    "timeout_members": "moderate_members",
    "timeout": "moderate_members",
    "view_channels": "view_channel",
    "use_external_emoji": "use_external_emojis",
    "use_voice_activity": "use_voice_activation",
    "video": "stream",
    "use_activities": "use_embedded_activities",
    "create_invite": "create_instant_invite",
    # Discord's settings, word for word
    "send_messages_and_create_posts": "send_messages",
    "send_messages_in_threads_and_posts": "send_messages_in_threads",
    "use_slash_commands": "use_application_commands",
    "view_server_insights": "view_guild_insights",
    "mention_everyone_here_and_all_roles": "mention_everyone",
}


# Names Discord shows for the permissions tools ask for (the rest: the attribute, titled).
_PERMISSION_NAMES = {
    "manage_guild": "Manage Server",
    "moderate_members": "Timeout Members",
    "view_channel": "View Channels",
    "mention_everyone": "Mention @everyone",
    "use_voice_activation": "Use Voice Activity",
    "stream": "Video",
}


def permission_name(attribute: str) -> str:
    """A permission as Discord's settings name it ("Manage Server" for manage_guild)."""
    return _PERMISSION_NAMES.get(attribute, attribute.replace("_", " ").title())


# discord.py's older spellings of the same bits, left out when naming a permission.
_OLD_NAMES = frozenset(
    {
        "read_messages",
        "external_emojis",
        "external_stickers",
        "manage_emojis",
        "manage_emojis_and_stickers",
        "manage_permissions",
        "create_polls",
    }
)
_NAMES = {
    bit: name
    for name, bit in sorted(discord.Permissions.VALID_FLAGS.items())
    if name not in _OLD_NAMES
}


def attributes(permissions: discord.Permissions) -> list[str]:
    """The permissions granted, as discord.py attribute names, lowest bit first."""
    return [name for bit, name in sorted(_NAMES.items()) if permissions.value & bit]


def requested(names: list[str]) -> discord.Permissions:
    """The permissions a model asked a new role to have, as Discord's or discord.py's names."""
    permissions = discord.Permissions.none()
    for name in names:
        key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        key = _ALIASES.get(key, key)
        if key not in discord.Permissions.VALID_FLAGS:
            raise ToolRefused(f"{name!r} is not a Discord permission.")
        permissions.value |= discord.Permissions.VALID_FLAGS[key]
    return permissions


def unsafe(permissions: discord.Permissions) -> list[str]:
    """The permissions granted beyond `SAFE`, by name (empty when the role is harmless);
    one Discord added since discord.py's release as `unknown_permission_<bit>`."""
    beyond = permissions.value & ~SAFE.value
    unknown = [
        f"unknown_permission_{bit}"
        for bit in range(beyond.bit_length())
        if beyond >> bit & 1 and 1 << bit not in _NAMES
    ]
    return attributes(discord.Permissions(beyond)) + unknown


def require_safe(permissions: discord.Permissions, what: str) -> None:
    """Refuse `what` ("a role made by the AI", "@Mods") when it grants anything beyond SAFE."""
    if beyond := unsafe(permissions):
        names = ", ".join(permission_name(name) for name in beyond)
        raise ToolRefused(
            f"Refused: {what} would grant {names}. The AI only handles roles with harmless "
            f"permissions ({', '.join(attributes(SAFE))}); an admin can do the rest by hand."
        )


def require_held(permissions: discord.Permissions, member: discord.Member, who: str) -> None:
    """Discord's rule for people: a role may only grant what its maker holds (owners aside)."""
    if member.guild.owner_id == member.id:
        return
    held = member.guild_permissions
    if held.administrator:
        return
    if lacking := attributes(discord.Permissions(permissions.value & ~held.value)):
        names = ", ".join(permission_name(name) for name in lacking)
        raise ToolRefused(f"{who} cannot grant {names}: a role may only grant what its maker has.")


def require_assignable(role: discord.Role, asker: discord.Member) -> None:
    """A role the asker may take or drop through the AI: harmless (in the server and in
    every channel's overwrites), not special, and below both the bot's top role and the
    asker's own (Discord's hierarchy, owners aside)."""
    name = f"@{role.name}"
    if role.is_default():
        raise ToolRefused("@everyone is everyone's role; it cannot be given or taken.")
    if role.managed:
        raise ToolRefused(f"{name} is managed by an integration or a boost; nobody can assign it.")
    if role >= asker.guild.me.top_role:
        raise ToolRefused(
            f"{name} is not below the bot's highest role, so the bot cannot assign it."
        )
    if asker.guild.owner_id != asker.id and role >= asker.top_role:
        raise ToolRefused(f"{name} is not below your highest role, so you cannot assign it.")
    require_safe(role.permissions, name)
    # A role can grant power in a channel through that channel's overwrite alone; a
    # channel hidden from the asker is not named to them.
    # discord.py's stored overwrites are read: its `overwrites_for` makes an object of
    # each (~20 µs a channel, for every channel of a server of hundreds).
    for channel in role.guild.channels:
        allowed = next((o.allow for o in channel._overwrites if o.id == role.id), 0)
        if not allowed & ~SAFE.value:
            continue
        where = f"#{channel.name}"
        if not sees(asker, channel):
            where = f"a channel {asker.display_name} cannot see"
        require_safe(discord.Permissions(allowed), f"{name} in {where}")
