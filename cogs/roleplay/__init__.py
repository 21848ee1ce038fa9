"""Roleplay cogs: server characters (created, or imported from SillyTavern cards) and the
scenes they play in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.roleplay.cog import Roleplay
from cogs.roleplay.scene_cog import Scenes

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    roleplay = Roleplay(bot)
    await bot.add_cog(roleplay)
    await bot.add_cog(Scenes(bot, roleplay.characters, roleplay.links, roleplay.sender))
