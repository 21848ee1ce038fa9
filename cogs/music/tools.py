"""The music player as AI tools: play, skip, pause, resume, queue, now playing, leave.

Each tool calls the same cog method as its slash command, for the person who asked,
so the checks are the command's: they must be in a voice channel the bot may join
(Connect, Speak) to play, and in the bot's channel to control it; with a DJ role set,
pause, resume and leave need it, and skip is a vote (:mod:`cogs.music.control`).
Track titles are written by others: results that carry them count as outside text
(pause and resume leave the title out, so a reply can still act after them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from cogs.music.channels import CONNECT_TIMEOUT
from utils.text import counted, truncate
from utils.tools import Asker, Done, Family, NoArguments, Tool, shown

if TYPE_CHECKING:
    from cogs.music.cog import Music
    from cogs.music.tracks import Track

SHOWN = 10  # queue entries a result lists


class PlayIn(BaseModel):
    query: str = Field(
        description="What to play: a YouTube or Spotify link, a media URL, or words to search "
        "YouTube for (e.g. 'lofi hip hop radio')"
    )


def _track(track: Track) -> dict[str, Any]:
    seconds = None if track.duration is None else int(track.duration)
    return {"title": track.title, "seconds": seconds}


def _name(text: str) -> str:
    """A title or playlist name in a note: cut short, then made safe (`shown`)."""
    return f"*{shown(truncate(text, 60))}*"


def _note(emoji: str, verb: str, track: Track) -> str:
    return f"{emoji} {verb} {_name(track.title)}"


def tools(music: Music) -> list[Tool[Any]]:
    """The music tools, bound to the cog whose commands they share."""

    async def play(asker: Asker, args: PlayIn) -> Done:
        member = asker.member()
        queued = await music.play_for(member.guild, member, asker.channel.id, args.query)
        count = len(queued.tracks)
        result: dict[str, Any] = {
            "queued": [_track(track) for track in queued.tracks[:SHOWN]],
            "count": count,
            "asked_for": count + queued.left_out,
            "left_out": queued.left_out,
            "playing_now": not queued.busy,
            "queue_position": queued.position,
        }
        if queued.left_out:  # so the reply does not say the whole playlist was queued
            result["why_left_out"] = queued.cut.value
        if queued.name:
            result["from"] = queued.name
        if queued.note:  # a Mix link: the video alone
            result["note"] = queued.note
        if count > 1 or queued.name:
            source = f" from {_name(queued.name)}" if queued.name else ""
            total = count + queued.left_out
            what = f"{count} of {total} tracks" if queued.left_out else counted(count, "track")
            note = f"🎵 queued {what}{source}"
        else:
            note = _note("🎵", "queued", queued.tracks[0])
        return Done(result, note=note, outside=True)

    async def skip(asker: Asker, _: NoArguments) -> Done:
        member = asker.member()
        track, vote = music.skip_for(member.guild, member)
        if vote is None or vote.passed:
            return Done({"skipped": _track(track)}, note=_note("⏭️", "skipped", track), outside=True)
        result = {"voted_to_skip": _track(track), "votes": vote.votes, "needed": vote.needed}
        return Done(result, note=f"🗳️ voted to skip ({vote.votes}/{vote.needed})", outside=True)

    async def pause(asker: Asker, _: NoArguments) -> Done:
        member = asker.member()
        await music.pause_for(member.guild, member)
        return Done({"paused": True}, note="⏸️ paused")

    async def resume(asker: Asker, _: NoArguments) -> Done:
        member = asker.member()
        await music.resume_for(member.guild, member)
        return Done({"resumed": True}, note="▶️ resumed")

    async def leave(asker: Asker, _: NoArguments) -> Done:
        member = asker.member()
        await music.leave_for(member.guild, member)
        return Done({"left": True, "queue_cleared": True}, note="👋 left voice")

    async def queue(asker: Asker, _: NoArguments) -> Done:
        player = music.queued(asker.member().guild)
        current, upcoming = player.queue.current, player.queue.upcoming
        result = {
            "now_playing": _track(current) if current else None,
            "loading": player.loading,
            "paused": player.paused,
            "upcoming": [_track(track) for track in upcoming[:SHOWN]],
            "upcoming_total": len(upcoming),
            "loop": player.queue.loop.value,
        }
        return Done(result, outside=True)

    async def now_playing(asker: Asker, _: NoArguments) -> Done:
        player, track = music.playing(asker.member().guild)
        result = {
            **_track(track),
            "position_seconds": int(player.position),
            "loading": player.loading,
            "paused": player.paused,
            "volume_percent": player.volume,
        }
        return Done(result, outside=True)

    # The play call resolves the query (up to music_resolve_timeout) while it joins.
    play_timeout = music.settings.music_resolve_timeout + CONNECT_TIMEOUT
    return [
        Tool(
            "play",
            "Play a song, playlist or search result in the voice channel of the person "
            "asking, or add it to the queue if something is playing. They must be in a "
            "voice channel.",
            Family.MUSIC,
            play,
            PlayIn,
            changes=True,
            timeout=play_timeout,
        ),
        Tool(
            "skip",
            "Skip the current track (where the server has a DJ role, others' skips are votes).",
            Family.MUSIC,
            skip,
            NoArguments,
            changes=True,
        ),
        Tool("pause", "Pause the music.", Family.MUSIC, pause, NoArguments, changes=True),
        Tool("resume", "Resume paused music.", Family.MUSIC, resume, NoArguments, changes=True),
        Tool(
            "queue",
            "The current track and the first upcoming tracks of the queue.",
            Family.MUSIC,
            queue,
            NoArguments,
        ),
        Tool(
            "now_playing",
            "The track playing now, how far it is and whether it is paused or still loading.",
            Family.MUSIC,
            now_playing,
            NoArguments,
        ),
        Tool(
            "leave",
            "Stop the music, clear the queue and leave the voice channel.",
            Family.MUSIC,
            leave,
            NoArguments,
            changes=True,
        ),
    ]
