"""Watching a track while it plays: its voice connection, and where it is.

discord.py's audio thread waits in silence for a lost connection to come back
(for a 4015, until discord.py's resume gives up after the connect timeout), so
the player stops such a track itself and has it recovered
(:mod:`cogs.music.recovery`). The track's position is saved every SAVE_EVERY, so a
crash (kill -9, a power cut) resumes it about where it was, not from its start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

DROP_GRACE = 2.0
"""Seconds a playing track's voice connection may be down (discord.py moving to a new
voice server takes well under one) before the track is stopped and recovered."""
WATCH_EVERY = 0.25
SAVE_EVERY = 15.0
"""Seconds between saves of a playing track's position."""


class Connected(Protocol):
    def is_connected(self) -> bool: ...


async def watch_voice(
    voice: Callable[[], Connected], dropped: Callable[[], None], save: Callable[[], None]
) -> None:
    """Call ``save`` every SAVE_EVERY, and ``dropped`` once the voice connection has been
    down for DROP_GRACE (cancel the task to stop watching)."""
    loop = asyncio.get_running_loop()
    down, save_at = 0.0, loop.time() + SAVE_EVERY
    while down < DROP_GRACE:
        await asyncio.sleep(WATCH_EVERY)
        down = 0.0 if voice().is_connected() else down + WATCH_EVERY
        if loop.time() >= save_at:
            save_at = loop.time() + SAVE_EVERY
            save()
    dropped()
