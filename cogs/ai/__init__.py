"""AI chat cog: Gemini replies streamed into channels, with history, summaries, personas and
tools; the `/ai` settings commands in a second cog beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.ai.cog import AI
from cogs.ai.settings_cog import AISettings

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    chat = AI(bot)
    await bot.add_cog(chat)
    await bot.add_cog(AISettings(bot, chat))
