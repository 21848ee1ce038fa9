"""Tools that read about the server: what it is, its channels, the asker's roles, how many
members it has, and the time somewhere. They change nothing; channel and role names are
written by people, so their results count as outside text.

The bot asks for no members intent, so discord.py hears of nobody joining or leaving: its
`Guild.member_count` is the count of when the bot connected, days old perhaps. The count
the tools give is Discord's own (`fetch_guild(with_counts=True)`), kept `COUNT_TTL`
seconds per server; when Discord does not give it in time, the old count is given,
marked as such.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import aiohttp
import discord
from pydantic import BaseModel, Field

from utils.checks import readable
from utils.tools import Asker, Done, Family, NoArguments, Tool, ToolRefused

log = logging.getLogger(__name__)

MAX_CHANNELS = 50
COUNT_TTL = 300.0  # seconds a server's member count is reused
COUNT_TIMEOUT = 5.0  # seconds to wait for Discord's count
MAX_COUNTS = 1000  # servers whose count is kept (the oldest kept goes first)
STALE_COUNT = "Counted when the bot connected, maybe a while ago: say it is about that many."
# An offset from UTC as people write it: "UTC+2", "GMT-5", "UTC+05:30", "+0200".
_OFFSET = re.compile(r"(?:utc|gmt)?\s*([+\-\u2212])\s*(\d{1,2})(?::?(\d{2}))?")
MAX_OFFSET = timedelta(hours=14)  # the furthest any place is from UTC (Kiribati)


class MemberCounts:
    """How many members servers have now, as Discord counts them (see the module
    docstring)."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._counts: dict[int, tuple[float, int]] = {}  # guild id -> (when fetched, count)

    async def of(self, guild: discord.Guild) -> dict[str, object]:
        """`{"members": n}`, with a note when `n` is the count of when the bot connected."""
        now = time.monotonic()
        kept = self._counts.get(guild.id)
        if kept is not None and now - kept[0] < COUNT_TTL:
            return {"members": kept[1]}
        try:
            async with asyncio.timeout(COUNT_TIMEOUT):
                fetched = await self.client.fetch_guild(guild.id, with_counts=True)
        except (
            TimeoutError,
            discord.HTTPException,
            discord.RateLimited,
            aiohttp.ClientError,
            OSError,
        ) as error:
            log.warning("could not get the member count of guild %s: %r", guild.id, error)
            fetched = None
        if fetched is None or fetched.approximate_member_count is None:
            return {"members": guild.member_count, "note": STALE_COUNT}
        self._counts.pop(guild.id, None)
        if len(self._counts) >= MAX_COUNTS:
            del self._counts[next(iter(self._counts))]
        self._counts[guild.id] = (now, fetched.approximate_member_count)
        return {"members": fetched.approximate_member_count}


async def server_info(counts: MemberCounts, asker: Asker, _: NoArguments) -> Done:
    """Facts anyone in the server sees: the channels counted are those `list_channels`
    names."""
    member = asker.member()
    guild = member.guild
    reads = readable(member, asker.channel.id)

    def visible(channels: list[discord.TextChannel] | list[discord.VoiceChannel]) -> int:
        return sum(1 for channel in channels if reads is not None and reads(channel.id))

    result = {
        "name": guild.name,
        "created": guild.created_at.date().isoformat(),
        **await counts.of(guild),
        "text_channels": visible(guild.text_channels),
        "voice_channels": visible(guild.voice_channels),
        "roles": len(guild.roles) - 1,
        "boost_level": guild.premium_tier,
        "description": guild.description or "",
    }
    return Done(result, outside=True)


async def list_channels(asker: Asker, _: NoArguments) -> Done:
    """The channels the asker can read, of those everyone reading the reply here can too
    (as memories are recalled: a staff member's question in #general names no staff
    channel), in the order Discord shows them: positions count within a category."""
    member = asker.member()
    reads = readable(member, asker.channel.id)
    visible = [
        channel
        for _, channels in member.guild.by_category()
        for channel in channels
        if reads is not None and reads(channel.id)
    ]
    channels = [
        {
            "name": channel.name,
            "kind": "voice" if isinstance(channel, discord.VoiceChannel) else channel.type.name,
            "category": channel.category.name if channel.category else None,
            "mention": channel.mention,
        }
        for channel in visible[:MAX_CHANNELS]
    ]
    return Done({"channels": channels, "shown": len(channels), "total": len(visible)}, outside=True)


async def my_roles(asker: Asker, _: NoArguments) -> Done:
    member = asker.member()
    roles = [role.name for role in reversed(member.roles) if not role.is_default()]
    return Done({"roles": roles}, outside=True)


async def member_count(counts: MemberCounts, asker: Asker, _: NoArguments) -> Done:
    return Done(await counts.of(asker.member().guild))


class TimeIn(BaseModel):
    timezone: str = Field(
        default="UTC",
        max_length=64,  # the longest IANA name has 32 characters
        description=(
            "An IANA time zone such as Europe/Paris or America/New_York, or an offset from "
            "UTC such as UTC+2 or UTC-05:30"
        ),
    )


@functools.cache
def _zone_names() -> dict[str, str]:
    """IANA names by their lower case ("europe/paris" → "Europe/Paris"), without the
    host's own zone ("localtime": where the bot runs is nobody's business)."""
    return {name.lower(): name for name in available_timezones() if name != "localtime"}


def _offset(asked: str) -> timezone | None:
    """The fixed offset `asked` writes ("UTC+2" is two hours ahead, unlike the IANA name
    Etc/GMT+2, which is two hours behind), or None if it writes none."""
    if (match := _OFFSET.fullmatch(asked)) is None:
        return None
    sign, hours, minutes = match.groups()
    if int(minutes or 0) >= 60:
        return None
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    return timezone(offset if sign == "+" else -offset) if offset <= MAX_OFFSET else None


async def current_time(_: Asker, args: TimeIn) -> Done:
    """The time in a zone or at an offset, with the zone's offset from UTC (so Etc/GMT+2
    reads as the UTC-02:00 it is)."""
    asked = args.timezone.strip().lower()
    zone: tzinfo | None = _offset(asked)
    if zone is None:
        try:
            # The first call reads the zone files: not on the event loop.
            zone = ZoneInfo((await asyncio.to_thread(_zone_names))[asked])
        except (KeyError, ZoneInfoNotFoundError) as error:
            raise ToolRefused(f"{args.timezone!r} is not a time zone I know.") from error
    now = datetime.now(UTC).astimezone(zone)
    offset = str(timezone(now.utcoffset() or timedelta()))
    return Done(
        {"timezone": str(zone), "utc_offset": offset, "time": now.strftime("%A %d %B %Y, %H:%M")}
    )


def tools(client: discord.Client) -> list[Tool]:
    counts = MemberCounts(client)
    return [
        Tool(
            "server_info",
            "Facts about this Discord server.",
            Family.INFO,
            functools.partial(server_info, counts),
            NoArguments,
        ),
        Tool(
            "list_channels",
            "The server's channels that the person asking, and everyone reading here, can see.",
            Family.INFO,
            list_channels,
            NoArguments,
        ),
        Tool("my_roles", "The roles of the person asking.", Family.INFO, my_roles, NoArguments),
        Tool(
            "member_count",
            "How many members the server has.",
            Family.INFO,
            functools.partial(member_count, counts),
            NoArguments,
        ),
        Tool(
            "current_time",
            "The current date and time in a time zone.",
            Family.INFO,
            current_time,
            TimeIn,
            guild_only=False,
        ),
    ]
