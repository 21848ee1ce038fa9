"""Noticing a voice connection that stays down while a track plays.

discord.py's audio thread waits in silence for a lost connection to come back
(for a 4015, until discord.py's resume gives up after the connect timeout), so
the player stops such a track itself and has it recovered
(:mod:`cogs.music.recovery`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

DROP_GRACE = 2.0
"""Seconds a playing track's voice connection may be down (discord.py moving to a new
voice server takes well under one) before the track is stopped and recovered."""
WATCH_EVERY = 0.25


class Connected(Protocol):
    def is_connected(self) -> bool: ...


async def watch_voice(voice: Callable[[], Connected], dropped: Callable[[], None]) -> None:
    """Call ``dropped`` once the voice connection has been down for DROP_GRACE
    (cancel the task to stop watching)."""
    down = 0.0
    while down < DROP_GRACE:
        await asyncio.sleep(WATCH_EVERY)
        down = 0.0 if voice().is_connected() else down + WATCH_EVERY
    dropped()
