"""Point discord.py at a fake Discord when ``FAKE_DISCORD_URL`` is set.

Put this directory on ``PYTHONPATH`` of a subprocess (``python bot.py``) and
Python imports it at start-up; without the variable it does nothing.
"""

from __future__ import annotations

import os


def _patch_discord(url: str) -> None:
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = f"{url}/api/v10"
    gateway = yarl.URL(url).with_scheme("ws").with_path("/gateway")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway

    # Voice: discord.py builds wss://{endpoint}; the fake voice server speaks plain ws://.
    ws_connect = discord.http.HTTPClient.ws_connect

    async def plain_ws_connect(self: object, url: str, *, compress: int = 0) -> object:
        return await ws_connect(self, url.replace("wss://", "ws://", 1), compress=compress)

    discord.http.HTTPClient.ws_connect = plain_ws_connect


if _url := os.environ.get("FAKE_DISCORD_URL"):
    _patch_discord(_url.rstrip("/"))
