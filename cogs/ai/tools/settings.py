"""Which tool families a server has on (`/ai tools`), and how `/ai audit` shows what tools did."""

from __future__ import annotations

import discord

from cogs.ai.tools.audit import DONE, FAILED, UNKNOWN, Action
from utils.text import truncate
from utils.tools import DEFAULT_FAMILIES, SWITCHABLE, Family

# Characters of the changes shown (a description holds 4096), and of each other kind of
# call (a field holds 1024): all three in an embed's 6000.
MAX_DESCRIPTION = 3800
MAX_FIELD = 1000
MARKS = {DONE: "✅", UNKNOWN: "❔", FAILED: "❌"}
UNDONE = ((UNKNOWN, "May have been done (outcome unknown)"), (FAILED, "Refused or failed"))

# What each switch covers, as `/ai tools` shows it.
FAMILY_HELP = {
    Family.MUSIC: "play, skip, pause, resume, queue, now playing, leave",
    Family.MEMORY: "remember, recall and forget things about the person asking",
    Family.SERVER: "create channels and threads, rename, slowmode, pins, roles (off by default)",
    Family.SEARCH: "Google Search for current facts",
    Family.LINKS: "read the links people paste (Google fetches them)",
}


def families(stored: frozenset[str] | None) -> frozenset[Family]:
    """The families on in a server: what it chose (reading about the server is always on)."""
    if stored is None:
        return DEFAULT_FAMILIES
    return frozenset(Family(name) for name in stored if name in Family._value2member_map_) | {
        Family.INFO
    }


def tools_embed(on: frozenset[Family], enabled: bool, offered: frozenset[Family]) -> discord.Embed:
    """The families on and off here; `offered`: those the loaded cogs have tools of (no
    memory tool while memory is off on this bot, whatever the server chose)."""
    embed = discord.Embed(title="AI tools in this server", colour=discord.Colour.blurple())
    if not enabled:
        embed.description = "Tools are turned off on this bot (AI_TOOLS_ENABLED)."
        return embed
    lines = [
        f"{'✅' if family in on else '⛔'} **{family.value}**: {FAMILY_HELP[family]}"
        if family in offered
        else f"➖ **{family.value}**: not available on this bot"
        for family in SWITCHABLE
    ]
    lines.append("✅ **info**: server info, channels, your roles, member count, time (always on)")
    embed.description = "\n".join(lines)
    embed.set_footer(text="Change one with /ai tools <family> on|off (Manage Server)")
    return embed


def audit_embed(done: list[Action], undone: list[Action]) -> discord.Embed:
    """The recent changes made, then apart the newest calls of `undone` by kind: those that
    may have been done (their outcome unknown), those refused or failed (a flood of them,
    which anyone can cause, hides no change). One a line, as many whole lines as the
    embed holds; their arguments and results (which the model and so anyone asking
    chose) shown as plain text: no masked links, formatting or mentions."""
    embed = discord.Embed(title="What AI tools did here", colour=discord.Colour.blurple())
    embed.description = _lines(done, MAX_DESCRIPTION) or "No tool has changed anything yet."
    for kind, name in UNDONE:
        if lines := _lines([a for a in undone if a.ok == kind], MAX_FIELD):
            embed.add_field(name=name, value=lines, inline=False)
    return embed


def _lines(actions: list[Action], room: int) -> str:
    """`actions`, one a line, newest first, as many whole lines as `room` characters hold."""
    lines: list[str] = []
    for a in actions:
        line = (
            f"<t:{int(a.created_at)}:R> <@{a.user_id}> in <#{a.channel_id}>: `{a.tool}` "
            f"{plain(a.arguments)} → {MARKS[a.ok]} {plain(a.result)}"
        )
        room -= len(line) + 1
        if room < 0:  # a line cut short could end inside a timestamp or a mention
            break
        lines.append(line)
    return "\n".join(lines)


def plain(text: str) -> str:
    """Recorded text shown as it is: short, its markdown and mentions escaped (a masked
    link's `](` too, so no part of it makes a link with a label)."""
    escaped = discord.utils.escape_markdown(truncate(text, 120)).replace("](", "]\\(")
    return discord.utils.escape_mentions(escaped)
