"""Data of guilds left and channels deleted while the bot was not listening.

The bot learns that it was removed from a guild, or that a channel or thread was
deleted, from gateway events; while it is offline those events are lost, and that
data would stay forever. So once this process's shards are ready, and daily after,
the maintenance cog compares where the features hold data (`DataOwners.places`) with
what Discord shows, and schedules what is gone for deletion with the usual grace
(`cogs.admin.retention`). Only the guilds of this process's shards are looked at;
data of DMs is never touched.

A guild is gone when its shard is ready and the bot is not in it (a guild in an outage
is still listed, as unavailable). A channel is gone when Discord says it does not exist
(404): archived threads and channels the bot cannot see are not in its cache, so each
one it does not know is asked about, at most `CHANNEL_CHECKS` a pass.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import discord

from utils.data_owners import Place

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

CHANNEL_CHECKS = 100
"""Channels asked about in one pass; the rest wait for the next (a day later)."""
CHANNEL_CHECK_TIMEOUT = 15.0


@dataclass
class Gone:
    guilds: set[int] = field(default_factory=set)
    channels: dict[int, int] = field(default_factory=dict)
    """Channel or thread id -> its guild's id."""


async def find_gone(bot: Bot, places: set[Place], known: set[int]) -> Gone:
    """What of ``places`` no longer exists, among this process's guilds. ``known``:
    channels and guilds already scheduled for deletion, not asked about again."""
    gone = Gone()
    unknown: list[tuple[int, int]] = []
    for guild_id, channel_id in places:
        if not bot.owns(guild_id) or guild_id in known:
            continue
        guild = bot.get_guild(guild_id)
        if guild is None:
            gone.guilds.add(guild_id)
        elif channel_id is None or channel_id in known or guild.unavailable:
            continue
        elif guild.get_channel_or_thread(channel_id) is None:
            unknown.append((channel_id, guild_id))
    # A different sample each pass: archived threads that stay do not hide the rest.
    for channel_id, guild_id in random.sample(unknown, min(len(unknown), CHANNEL_CHECKS)):
        if await _deleted(bot, channel_id):
            gone.channels[channel_id] = guild_id
    if len(unknown) > CHANNEL_CHECKS:
        left = len(unknown) - CHANNEL_CHECKS
        log.info("%d channels unknown to the cache wait for the next pass", left)
    return gone


async def _deleted(bot: Bot, channel_id: int) -> bool:
    """Whether Discord says the channel does not exist. Any other answer (no access,
    an error, no answer) keeps its data."""
    try:
        async with asyncio.timeout(CHANNEL_CHECK_TIMEOUT):
            await bot.fetch_channel(channel_id)
    except discord.NotFound:
        return True
    except (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, OSError):
        return False  # timeouts and dropped connections too
    return False
