"""Answers made of embeds, readable where the bot may not send embeds.

Without Embed Links in a channel, Discord drops the embeds of the bot's messages and
refuses a message left with nothing in it: a prefix command answered with embeds
alone would say nothing there. Interaction responses are not bound by the channel's
permissions, so they keep their embeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import discord
from discord.ext import commands

from utils.text import split_message


def embed_text(embed: discord.Embed) -> str:
    """``embed`` as plain text: title, description, fields (name, then value), footer."""
    parts = [f"**{embed.title}**"] if embed.title else []
    if embed.description:
        parts.append(embed.description)
    for field in embed.fields:
        name = (field.name or "").strip().replace("\u200b", "")
        if not name:  # a section's continuation
            parts.append(field.value or "")
        elif field.inline:
            parts.append(f"**{name}**: {field.value}")
        else:
            parts.append(f"**{name}**\n{field.value}")
    if embed.footer.text:
        parts.append(f"-# {embed.footer.text}")
    return "\n".join(parts)


async def send_embeds(
    ctx: commands.Context[Any],
    embeds: Iterable[discord.Embed],
    *,
    ephemeral: bool = False,
    view: discord.ui.View | None = None,
) -> discord.Message | None:
    """Send each embed in a message of its own, ``view`` under the last one (returned); as
    plain text where the bot may not send embeds (a prefix command in a channel without
    Embed Links)."""
    if ctx.interaction is not None or ctx.bot_permissions.embed_links:
        sends: list[dict[str, Any]] = [{"embed": e, "ephemeral": ephemeral} for e in embeds]
    else:
        sends = [{"content": chunk} for e in embeds for chunk in split_message(embed_text(e))]
    if sends and view is not None:
        sends[-1]["view"] = view
    message = None
    for send in sends:
        message = await ctx.send(**send)
    return message
