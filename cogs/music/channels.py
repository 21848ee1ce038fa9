"""Discord channel helpers for music: the caller's voice channel, whether the bot may
join a channel, joining it (and speaking on a Stage), a guild's voice connection, and
the channel music messages go to and posting a plain message there.

Free functions shared by :class:`~cogs.music.sessions.Sessions` and the cog; they hold
no state.  :class:`MusicVoice` is the voice client they join with.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from typing import Any

import discord
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from cogs.music.errors import CannotJoin, MusicError, VoiceUnreachable

log = logging.getLogger(__name__)

VoiceChannel = discord.VoiceChannel | discord.StageChannel

CONNECT_TIMEOUT = 15.0


def caller_channel(member: discord.Member) -> VoiceChannel:
    if member.voice is None or member.voice.channel is None:
        raise MusicError("Join a voice channel first, then ask me again.")
    return member.voice.channel


def check_can_join(channel: VoiceChannel) -> None:
    perms = channel.permissions_for(channel.guild.me)
    missing = [name for name, ok in (("Connect", perms.connect), ("Speak", perms.speak)) if not ok]
    if missing:
        needs = f"{' and '.join(missing)} permission{'s' if len(missing) > 1 else ''}"
        raise CannotJoin(f"I need the {needs} in {channel.mention}.")
    limit = getattr(channel, "user_limit", 0)
    # The bot joins from elsewhere: a state of its own here is one a crash left behind.
    present = [user_id for user_id in channel.voice_states if user_id != channel.guild.me.id]
    if limit and len(present) >= limit and not perms.move_members:
        raise CannotJoin(
            f"{channel.mention} is full; I'd need the Move Members permission to join it anyway."
        )


VOICE_LIBRARIES = {"nacl": "PyNaCl", "davey": "davey"}
"""Modules discord.py 2.7 needs for voice (transport encryption, DAVE end-to-end
encryption) and the packages that provide them."""


def voice_problem() -> str | None:
    """Why voice cannot work on this machine (a missing library), or None."""
    missing = []
    for module, package in VOICE_LIBRARIES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if not missing:
        return None
    return f"{' and '.join(missing)} cannot be imported (install discord.py[voice])"


class VoiceConnection(VoiceConnectionState):
    """discord.py 2.7's voice connection flow, without a lost wake-up in its handshake.

    discord.py announces each state change by setting and at once clearing an event,
    and waits for it in a task of its own that may start only after the change: when
    VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE are parsed at that moment, the join
    waits out its whole timeout.
    Waiting in place, right after looking at the state, misses no change.
    A move to another channel (:func:`_wake_reader`) no longer waits out a stale socket.
    """

    async def _wait_for_state(
        self,
        state: ConnectionFlowState,
        *other_states: ConnectionFlowState,
        timeout: float | None = None,  # noqa: ASYNC109 (discord.py's signature)
    ) -> None:
        states = (state, *other_states)
        async with asyncio.timeout(timeout):
            while self.state not in states:
                await self._state_event.wait()

    def _create_socket(self) -> None:
        old = self.socket
        super()._create_socket()
        if isinstance(old, socket.socket):
            _wake_reader(old)


def _wake_reader(old: socket.socket) -> None:
    """On a move to another channel discord.py 2.7 opens a new UDP socket, while its
    reader thread still waits (up to 30 s) on the old one: the new connection's IP
    discovery, and so the move, would wait that long. Shutting the old one wakes it."""
    with contextlib.suppress(OSError):  # ENOTCONN if it never connected: woken all the same
        old.shutdown(socket.SHUT_RDWR)


class MusicVoice(discord.VoiceClient):
    """discord.py's voice client, telling a moderator's disconnect from a dropped
    connection, and leaving for good when asked to.

    Discord announces a moderator's disconnect while the connection is up; discord.py's
    own reconnects (and its giving up) take the connection down before they leave.
    """

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.kicked = False
        """Someone else took the bot out of its channel."""

    def create_connection_state(self) -> VoiceConnectionState:
        return VoiceConnection(self)

    async def on_voice_state_update(self, data: Any) -> None:
        if data.get("channel_id") is None and self.is_connected():
            self.kicked = True
        await super().on_voice_state_update(data)

    async def disconnect(self, *, force: bool = False) -> None:
        try:
            await super().disconnect(force=force)
        finally:
            # discord.py 2.7 leaves its reconnect loop running: mid-reconnect, it would
            # later leave (taking a new connection of this guild with it) and join again.
            runner = self._connection._runner  # pyright: ignore[reportPrivateUsage]
            if runner is not None and runner is not asyncio.current_task():
                runner.cancel()


async def connect(channel: VoiceChannel, *, within: float = CONNECT_TIMEOUT) -> MusicVoice:
    """Join `channel`. discord.py gives up after five refused handshakes without an
    error, returning a client that is not connected: that is a failure here too."""
    try:
        voice = await channel.connect(
            timeout=within, reconnect=True, self_deaf=True, cls=MusicVoice
        )
    except RuntimeError as error:  # discord.py: a voice library is missing
        log.error("voice is unavailable: %s", error)
        raise MusicError("Voice is unavailable on this bot right now; tell its owner.") from error
    except (TimeoutError, discord.ClientException) as error:
        log.warning("could not join voice channel %s: %r", channel.id, error)
        raise VoiceUnreachable(
            f"I couldn't connect to {channel.mention}; try again soon."
        ) from error
    if not voice.is_connected():
        log.warning("could not join voice channel %s: the handshake kept failing", channel.id)
        await voice.disconnect(force=True)
        raise VoiceUnreachable(f"I couldn't connect to {channel.mention}; try again soon.")
    return voice


async def become_speaker(me: discord.Member) -> str | None:
    """On a Stage channel the bot arrives in the audience, where nobody hears it: become
    a speaker (that needs Mute Members), else ask to speak. What to tell people when it
    is left waiting for a stage moderator, or None."""
    state = me.voice
    channel = state.channel if state else None
    if not isinstance(channel, discord.StageChannel) or not state or not state.suppress:
        return None
    if state.requested_to_speak_at is not None:
        return None  # asked already: people were told
    try:
        if channel.permissions_for(me).mute_members:
            await me.edit(suppress=False)
            return None
        await me.request_to_speak()
    except discord.HTTPException as error:
        log.warning("could not speak in stage channel %s: %s", channel.id, error)
    return (
        f"🎙️ I'm in the audience of {channel.mention}, where nobody hears me: invite me to "
        "speak, or give me the Mute Members permission there."
    )


def listeners(channel: VoiceChannel) -> list[int]:
    """Ids of the people (not bots) in a voice channel."""
    guild = channel.guild
    return [
        user_id
        for user_id in channel.voice_states
        if not ((member := guild.get_member(user_id)) and member.bot) and user_id != guild.me.id
    ]


def voice_of(guild: discord.Guild) -> discord.VoiceClient | None:
    voice = guild.voice_client
    return voice if isinstance(voice, discord.VoiceClient) else None


async def text_channel(guild: discord.Guild, channel_id: int) -> discord.abc.Messageable | None:
    """The channel or thread of ``guild`` that music messages go to, or None if it is
    hidden from the bot (or Discord does not answer); discord.NotFound if it was deleted.
    An archived thread is not in discord.py's cache: it is fetched, and a message there
    unarchives it (where the bot may)."""
    channel = guild.get_channel_or_thread(channel_id)
    if channel is None:
        try:
            channel = await guild.fetch_channel(channel_id)
        except discord.NotFound:
            log.info("channel %s for music messages in guild %s is gone", channel_id, guild.id)
            raise
        except (discord.HTTPException, discord.RateLimited, discord.InvalidData) as error:
            log.info(
                "no channel %s for music messages in guild %s: %s", channel_id, guild.id, error
            )
            return None
    return channel if isinstance(channel, discord.abc.Messageable) else None


async def send(channel: discord.abc.Messageable, content: str) -> None:
    try:
        await channel.send(content, allowed_mentions=discord.AllowedMentions.none())
    except (discord.HTTPException, discord.RateLimited) as error:  # a long slowmode...
        log.warning("could not send a music message: %s", error)
