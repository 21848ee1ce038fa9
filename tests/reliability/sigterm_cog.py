"""An extension that gets SIGTERM while it loads, as a bot stopped during start-up does,
and finishes loading as soon as the shutdown begins (tests/reliability/test_startup.py)."""

from __future__ import annotations

import asyncio
import os
import signal

from bot import Bot


async def setup(bot: Bot) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        raise RuntimeError("no SIGTERM handler: start the bot through bot.run")
    begun = asyncio.Event()
    bot.shutdown_manager.register("sigterm cog", begun.set, priority=0)  # the first to run
    os.kill(os.getpid(), signal.SIGTERM)
    await begun.wait()
