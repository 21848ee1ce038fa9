"""Roleplay: characters, scenes and the webhooks they speak through."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    """Nothing to add yet: the roleplay cog arrives with the characters."""
