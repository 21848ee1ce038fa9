"""Music cog: YouTube, Spotify and direct links played in voice channels, with a queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.music.cog import Music

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    await bot.add_cog(Music(bot))
