"""Music cog: YouTube, Spotify and direct links played in voice channels, with a queue;
in cogs beside it: /seek, /replay and /filter; the server's music modes (autoplay, 24/7, DJ
role); the history and saved playlists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.music.cog import Music
from cogs.music.library import MusicLibrary
from cogs.music.modes import MusicModes
from cogs.music.playback import Playback

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    music = Music(bot)
    await bot.add_cog(music)
    await bot.add_cog(MusicModes(bot, music))
    await bot.add_cog(Playback(bot, music))
    await bot.add_cog(MusicLibrary(bot, music))
