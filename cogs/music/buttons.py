"""The now-playing message's buttons: what a press does.

:class:`~cogs.music.views.ControlButton` hands each press to the Music cog as the
``music_control`` event, and :func:`press` answers it as the matching command would
(the same checks, through the cog's ``*_for`` methods and the sessions' access): it
shows the player as it is now on the message, or tells the presser alone what
happened or why not.  A press on the message of an earlier track is refused: its
buttons would act on another track than the one they show.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from cogs.music.control import STOPPED, skip_note
from cogs.music.errors import MusicError
from cogs.music.views import player_controls, player_embed, shown_as
from utils.db import DB_ERRORS
from utils.errors import SORRY
from utils.text import counted

if TYPE_CHECKING:
    from cogs.music.cog import Music

log = logging.getLogger(__name__)

OUT_OF_DATE = "That message is out of date: `/nowplaying` shows what plays now, with its buttons."


async def press(
    music: Music, interaction: discord.Interaction, action: str, play: str | None
) -> None:
    """Answer a press of ``action`` on the message of the track ``play``. A failure is
    handled here, logged once: the ``music_control`` event has no handler after this one,
    and discord.py would log its traceback while the presser saw "This interaction failed"."""
    try:
        await _press(music, interaction, action, play)
    except discord.HTTPException as error:  # the answer refused: a press answered too late...
        log.warning(
            "could not answer the %s button in guild %s: %r", action, interaction.guild_id, error
        )
    except Exception:  # a bug: logged once, and the presser still gets an answer
        log.exception("the %s button failed in guild %s", action, interaction.guild_id)
        await _answer(interaction, SORRY)


async def _press(
    music: Music, interaction: discord.Interaction, action: str, play: str | None
) -> None:
    guild, member = interaction.guild, interaction.user
    if guild is None or not isinstance(member, discord.Member):
        return
    player = music.sessions.players.get(guild.id)
    # An earlier track's message (one edited while this track loads carries its play).
    if play is None or player is None or play != player.play_id:
        await interaction.response.send_message(OUT_OF_DATE, ephemeral=True)
        return
    try:
        if action == "stop":  # slow (the voice connection closes): defer, then follow up
            await music.leave_for(guild, member, checked=interaction.response.defer)
            await interaction.followup.send(STOPPED, ephemeral=True)
            return
        note = _apply(music, guild, member, action)
    except MusicError as error:
        await _answer(interaction, str(error))
        return
    except DB_ERRORS as error:  # Stop forgets the saved queue
        log.error("the %s button failed in guild %s: %r", action, guild.id, error)
        await _answer(interaction, SORRY)
        return
    player = music.sessions.players.get(guild.id)
    current = player.queue.current if player else None
    if note is None and player is not None and current is not None:
        await interaction.response.edit_message(
            **shown_as(interaction.message, player_embed(player, current)),
            view=player_controls(player),
        )
        # The track's own message shows it too, when a /nowplaying copy was pressed.
        pressed = interaction.message.id if interaction.message else None
        music.sessions.now_playing.refresh(player, shown=pressed)
    else:
        await interaction.response.send_message(note or "Done.", ephemeral=True)


def _apply(music: Music, guild: discord.Guild, member: discord.Member, action: str) -> str | None:
    """Apply a button as the command would; a note for the presser, or None to
    refresh the message."""
    if action == "skip":
        return skip_note(*music.skip_for(guild, member))
    player = music.sessions.access.controlled(guild, member)
    if action == "toggle" and player.paused:
        player.resume()
    elif action == "toggle":
        player.pause()
    elif action == "loop":
        player.set_loop()
    elif action == "shuffle":
        return f"🔀 Shuffled {counted(player.shuffle(), 'track')}."
    else:
        raise MusicError("That button doesn't do anything any more.")
    return None


async def _answer(interaction: discord.Interaction, content: str) -> None:
    """Answer a press for the presser alone, whether it was deferred or not."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content, ephemeral=True)
        else:
            await interaction.response.send_message(content, ephemeral=True)
    except discord.HTTPException as error:
        log.warning("could not answer the press of interaction %s: %s", interaction.id, error)
