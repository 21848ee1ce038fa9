"""A character's name where it speaks: as the username of a webhook message, or in bold
before its text when it speaks as the bot (no webhook in that channel).

Discord refuses some webhook usernames (400 50035): `webhook_username` disguises them
with look-alike letters rather than silence the character. `TEXT_LIMIT` is the most
text one message of a character may carry so that either form fits. No I/O here.
"""

from __future__ import annotations

import re

import discord

from utils.text import DISCORD_LIMIT

NAME_LIMIT = 80  # Discord's longest webhook username
FALLBACK_PREFIX = "**{name}**: "
# The most text one message may carry so that the bold-name fallback (its name
# escaped: up to twice as long) still fits.
TEXT_LIMIT = DISCORD_LIMIT - len(FALLBACK_PREFIX.format(name="")) - 2 * NAME_LIMIT

_FORBIDDEN_IN_NAMES = re.compile("clyde|discord", re.IGNORECASE)
_RESERVED_NAMES = frozenset({"everyone", "here", "system message"})
"""Names Discord refuses as a whole, in any case (400 50035 "Username cannot be")."""
_CYRILLIC_E = str.maketrans("eE", "\u0435\u0415")


def _shortened(name: str) -> str:
    return " ".join(name.split())[:NAME_LIMIT].strip()


def webhook_username(name: str) -> str:
    """`name` as Discord accepts it for a webhook message: 1 to 80 characters, without
    "clyde" or "discord" (their "c" becomes a Cyrillic look-alike), and not "everyone",
    "here" or "system message" (their "e"s do)."""
    cleaned = _shortened(name)
    while _FORBIDDEN_IN_NAMES.search(cleaned):  # again: "Discordiscord" overlaps
        cleaned = _FORBIDDEN_IN_NAMES.sub(
            lambda match: match[0].replace("c", "\u0441").replace("C", "\u0421"), cleaned
        )
    if cleaned.casefold() in _RESERVED_NAMES:
        cleaned = cleaned.translate(_CYRILLIC_E)
    return cleaned or "Unnamed character"


def in_bold(name: str, content: str) -> str:
    """`content` as the bot says it for the character `name`: its name in bold first."""
    name = discord.utils.escape_markdown(_shortened(name) or "Unnamed character")
    return FALLBACK_PREFIX.format(name=name) + content
