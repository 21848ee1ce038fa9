"""Admin cog: maintenance commands, stats, per-guild settings, the global error handler;
and the background upkeep of the data directory (backups, retention)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.admin.cog import Admin
from cogs.admin.maintenance import Maintenance

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    await bot.add_cog(Admin(bot))
    await bot.add_cog(Maintenance(bot))
