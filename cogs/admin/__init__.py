"""Admin cog: maintenance commands, stats, per-guild settings, the global error handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.admin.cog import Admin

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    await bot.add_cog(Admin(bot))
