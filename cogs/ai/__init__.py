"""AI chat cog: Gemini replies streamed into channels, with history, summaries and personas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.ai.cog import AI

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    await bot.add_cog(AI(bot))
