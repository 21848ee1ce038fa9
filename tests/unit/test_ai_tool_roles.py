"""The permission allowlist of roles the AI makes or hands out."""

from __future__ import annotations

import discord
import pytest
from pydantic import BaseModel, ValidationError

from cogs.ai.tools.roles import (
    SAFE,
    attributes,
    permission_name,
    requested,
    require_safe,
    unsafe,
)
from cogs.ai.tools.server import CreateChannelIn, CreateRoleIn, RenameIn, SlowmodeIn
from utils.tools import ToolRefused

NEVER = [
    "administrator",
    "manage_guild",
    "manage_roles",
    "kick_members",
    "ban_members",
    "moderate_members",
    "manage_webhooks",
    "mention_everyone",
    "manage_channels",
    "manage_messages",
    "manage_threads",
    "manage_nicknames",
    "view_audit_log",
    "move_members",
    "mute_members",
    "deafen_members",
    "pin_messages",
    "bypass_slowmode",
]


def test_names_people_use_map_to_discord_permissions() -> None:
    permissions = requested(["Send Messages", "read-message-history", " connect ", "Video"])
    assert attributes(permissions) == sorted(
        ["send_messages", "read_message_history", "connect", "stream"],
        key=attributes(discord.Permissions.all()).index,
    )
    assert requested(["Manage Server"]).manage_guild
    assert requested(["timeout members"]).moderate_members
    assert requested(["admin"]).administrator
    assert permission_name("manage_guild") == "Manage Server"
    assert permission_name("moderate_members") == "Timeout Members"
    assert requested([]).value == 0


@pytest.mark.parametrize(
    ("name", "attribute"),
    [
        ("Send Messages and Create Posts", "send_messages"),
        ("Send Messages in Threads and Posts", "send_messages_in_threads"),
        ("Use Slash Commands", "use_application_commands"),
        ("View Server Insights", "view_guild_insights"),
        ("Mention @everyone, @here, and All Roles", "mention_everyone"),
    ],
)
def test_names_discords_settings_show_are_permissions(name: str, attribute: str) -> None:
    assert attributes(requested([name])) == [attribute]


def test_unknown_permission_is_refused_by_name() -> None:
    with pytest.raises(ToolRefused, match="'fly' is not a Discord permission"):
        requested(["send_messages", "fly"])


@pytest.mark.parametrize("name", NEVER)
def test_powerful_permissions_are_never_allowed(name: str) -> None:
    permissions = requested(["send_messages", name])
    assert unsafe(permissions) == [name]
    with pytest.raises(ToolRefused) as refused:
        require_safe(permissions, "a role made by the AI")
    assert f"would grant {permission_name(name)}." in str(refused.value)


def test_administrator_is_named_even_among_others() -> None:
    with pytest.raises(ToolRefused, match=r"would grant Ban Members, Administrator\."):
        require_safe(discord.Permissions(administrator=True, ban_members=True), "@Mods")


def test_a_permission_discord_py_does_not_know_is_not_harmless() -> None:
    """Discord adds permissions before discord.py names them: a role carrying one (in the
    server or in a channel's overwrite) was handed out as harmless, as no name of it was
    found beyond the allowlist."""
    newer = discord.Permissions(SAFE.value | 1 << 60)
    assert unsafe(newer) == ["unknown_permission_60"]
    with pytest.raises(ToolRefused, match=r"@Helper would grant Unknown Permission 60\."):
        require_safe(newer, "@Helper")


def test_harmless_permissions_pass() -> None:
    require_safe(SAFE, "a role made by the AI")
    require_safe(requested(["send_messages", "connect", "speak", "add_reactions"]), "x")
    assert "view_channel" in attributes(SAFE) and "read_messages" not in attributes(SAFE)
    assert not SAFE.administrator and not SAFE.manage_guild and not SAFE.mention_everyone


@pytest.mark.parametrize(
    ("params", "args"),
    [
        (CreateChannelIn, {"name": "games", "category": "c" * 111}),
        (RenameIn, {"name": "games", "channel": "#" + "c" * 110}),
        (SlowmodeIn, {"seconds": 5, "channel": "c" * 5000}),
        (CreateRoleIn, {"name": "Gamer", "permissions": ["send_messages" * 10]}),
    ],
)
def test_a_name_longer_than_discord_allows_is_refused_before_any_lookup(
    params: type[BaseModel], args: dict[str, object]
) -> None:
    """A model's huge argument is not matched against every channel nor echoed back whole
    in the refusal."""
    with pytest.raises(ValidationError):
        params.model_validate(args)


def test_a_channel_named_in_full_is_taken() -> None:
    assert RenameIn.model_validate({"name": "x", "channel": " #" + "c" * 100}).channel
