"""Rejoining voice after a restart: the saved sessions resume where they stopped, and
servers in 24/7 mode get the bot back in their channel, with an empty queue if need be.

Sessions of guilds in an outage resume once Discord has the guild back.  Sessions of
guilds the bot is not in now are kept (an accidental kick loses nothing; retention
deletes them later), and so are sessions whose voice channel could not be joined
(voice turned the bot away, it lost a permission there, the channel is full: the
next start tries again, unless someone plays something first); sessions that
cannot resume (the channel is gone, the queue was empty, MUSIC_RESUME_ON_START is
off) are forgotten.  When a queue with tracks is kept or dropped because of its voice
channel, its text channel is told why.  With several shard processes on one database
each restores only the guilds of its own shards: the others' sessions are theirs to
resume (or to find playing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from cogs.music.channels import VoiceChannel, check_can_join, connect, send, text_channel
from cogs.music.errors import CannotJoin, MusicError, VoiceUnreachable
from cogs.music.queue import TrackQueue
from cogs.music.store import Session
from cogs.music.views import clean, format_time

if TYPE_CHECKING:
    from cogs.music.sessions import Sessions

log = logging.getLogger(__name__)

RESTORE_CONCURRENCY = 4
"""Voice channels rejoined at the same time after a restart."""
RESTORE_CONNECT_TIMEOUT = 90.0
"""Rejoining many channels meets the gateway's limit of 120 commands a minute (each
join is one); discord.py waits for the limit, so restores wait longer than /play."""


class ChannelGone(MusicError):
    """The session's voice channel was deleted."""


async def restore_sessions(sessions: Sessions) -> None:
    bot = sessions.bot
    await bot.wait_until_ready()
    joining = asyncio.Semaphore(RESTORE_CONCURRENCY)
    saved = {session.guild_id: session for session in await sessions.saves.store.load_all()}
    for rules in await sessions.music_settings.staying():
        if rules.guild_id not in saved and rules.stay_channel_id is not None:
            saved[rules.guild_id] = Session(  # nothing saved (a /stop): as a new player
                rules.guild_id,
                rules.stay_channel_id,
                rules.stay_text_channel_id,
                volume=sessions.settings.music_default_volume,
            )
    mine = [session for session in saved.values() if bot.owns(session.guild_id)]
    await asyncio.gather(*(_restore_one(sessions, s, joining) for s in mine))


async def _restore_one(sessions: Sessions, session: Session, joining: asyncio.Semaphore) -> None:
    bot = sessions.bot
    guild = bot.get_guild(session.guild_id)
    if guild is not None and guild.unavailable:
        # In an outage: it resumes once Discord has the server back (the wait ends
        # with the bot, which cancels the restore).
        log.info("music in guild %s waits for the end of its outage", session.guild_id)
        guild = await bot.wait_for("guild_available", check=lambda g: g.id == session.guild_id)
    async with joining:
        if session.guild_id in sessions.players:
            return
        if guild is None:
            # Removed, perhaps by accident: keep the queue for when the bot is back;
            # retention deletes it if the bot does not come back.
            log.info("not resuming music in guild %s: not in it now", session.guild_id)
            return
        try:
            await _restore(sessions, session, guild)
        except (VoiceUnreachable, CannotJoin) as error:
            log.warning("could not rejoin voice in guild %s: %s; queue kept", guild.id, error)
            sessions.keep_saved(session.guild_id)
            why = f": {error}" if isinstance(error, CannotJoin) else "."
            await _tell(
                session,
                guild,
                f"⚠️ I couldn't rejoin <#{session.voice_channel_id}> after a restart{why} "
                "The queue is kept for my next start, unless you play something now.",
            )
        except ChannelGone:
            log.info("not resuming music in guild %s: the voice channel is gone", guild.id)
            await sessions.saves.forget(session.guild_id)
            await _tell(
                session,
                guild,
                "⚠️ The voice channel I was playing in is gone, so the queue from before my "
                "restart is dropped.",
            )
        except MusicError as error:
            log.info("not resuming music in guild %s: %s", session.guild_id, error)
            await sessions.saves.forget(session.guild_id)
        except discord.DiscordException as error:
            log.warning("could not resume music in guild %s: %r", session.guild_id, error)
            await sessions.saves.forget(session.guild_id)


async def _tell(session: Session, guild: discord.Guild, note: str) -> None:
    """Say why a queue with tracks in it does not resume, where it was played."""
    if not (session.current or session.upcoming) or session.text_channel_id is None:
        return
    with contextlib.suppress(discord.NotFound):  # deleted too: nowhere to say it
        if text := await text_channel(guild, session.text_channel_id):
            await send(text, note)


async def _restore(sessions: Sessions, session: Session, guild: discord.Guild) -> None:
    rules = await sessions.music_settings.get(guild.id)
    home = (
        guild.get_channel(rules.stay_channel_id) if rules.stay and rules.stay_channel_id else None
    )
    # A deleted 24/7 channel is no home: the queue resumes where it played, and may end.
    staying = isinstance(home, VoiceChannel)
    if staying:  # 24/7: its channel, with or without the saved queue
        session.voice_channel_id = rules.stay_channel_id or session.voice_channel_id
        session.text_channel_id = rules.stay_text_channel_id or session.text_channel_id
        if not sessions.settings.music_resume_on_start:
            session.current, session.upcoming = None, []
    elif not sessions.settings.music_resume_on_start:
        raise MusicError("MUSIC_RESUME_ON_START is off")
    elif session.current is None and not session.upcoming:
        raise MusicError("the queue was empty")
    channel = guild.get_channel(session.voice_channel_id)
    if not isinstance(channel, VoiceChannel):
        raise ChannelGone("the voice channel is gone")
    check_can_join(channel)
    async with sessions.lock(guild.id):
        if guild.id in sessions.players:  # someone played meanwhile: theirs replaces it
            log.info("not resuming music in guild %s: something plays already", guild.id)
            return
        queue = TrackQueue(sessions.settings.music_queue_limit)
        queue.restore(session.current, session.upcoming, session.loop)
        voice = await connect(channel, within=RESTORE_CONNECT_TIMEOUT)
        player = await sessions.new_player(
            guild.id, voice, session.text_channel_id, queue=queue, volume=session.volume
        )
        player.filter = session.audio_filter
        # Not with 24/7's channel gone (the timers decide), nor turned off meanwhile.
        player.stay = staying and (await sessions.music_settings.get(guild.id)).stay
        if session.current is not None:  # first: a track that fails at once says so after
            title, at = clean(session.current.title), format_time(session.position)
            await sessions.say(
                player,
                f"🔄 Back after a restart: {title} is paused at {at}; `/resume` plays it on."
                if session.paused
                else f"🔄 Back after a restart: resuming {title} at {at}.",
            )
        player.start(position=session.position, paused=session.paused)
        sessions.update_alone(guild)
        await sessions.take_the_stage(guild)
