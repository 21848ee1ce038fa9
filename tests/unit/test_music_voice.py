"""The voice handshake of :class:`~cogs.music.channels.MusicVoice` misses no state change."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from discord.voice_state import ConnectionFlowState

from cogs.music.channels import VoiceConnection


async def test_the_handshake_hears_both_voice_updates_arriving_as_it_starts_waiting() -> None:
    """discord.py 2.7's own flow waits out its timeout here: the change lands between
    its look at the state and the start of the task that waits for the next one."""
    connection = VoiceConnection(cast(Any, None))  # no voice client: only the flow runs
    try:
        connection.state = ConnectionFlowState.set_guild_voice_state  # op 4 sent
        both = ConnectionFlowState.got_both_voice_updates
        waiting = asyncio.create_task(connection._wait_for_state(both, timeout=5))
        await asyncio.sleep(0)  # it looks at the state and waits
        connection.state = both  # VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE, parsed at once
        await waiting
        assert connection.state is both
    finally:
        connection._socket_reader.stop()
