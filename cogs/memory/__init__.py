"""Memory cog: the `/memory` commands to see, add and delete what the bot remembers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.memory.cog import MemoryCog

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    await bot.add_cog(MemoryCog(bot))
