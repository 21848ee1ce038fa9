"""Who controls the music: the DJ role rule and the votes to skip.

With a DJ role set for a server, pausing, stopping, seeking, editing the queue and
changing the volume or filters need that role or Manage Channels in the voice
channel; anyone there may still add tracks, and a skip by anyone else is a vote
that wins with more than half of the listeners (bots excluded). Without a DJ role (or
once the one set is deleted) everyone in the channel controls, as before. Pure rules
and one bounded table of votes (one entry per guild with a track playing); no Discord
calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from cogs.music.settings import MusicSettings
from cogs.music.tracks import Track
from cogs.music.views import clean


def is_dj(
    member: discord.Member,
    channel: discord.abc.GuildChannel | discord.Thread,
    rules: MusicSettings,
) -> bool:
    """Whether ``member`` may use the DJ-only controls in ``channel``: anyone there while
    no DJ role is set, or once the role set has been deleted (else only Manage Channels
    would be left in control, refused in the name of a role nobody can be given)."""
    role_id = rules.dj_role_id
    if role_id is None or member.guild.get_role(role_id) is None:
        return True
    return unlimited(member, channel, rules)


def unlimited(
    member: discord.Member,
    channel: discord.abc.GuildChannel | discord.Thread,
    rules: MusicSettings,
) -> bool:
    """Whether ``member`` may queue past the per-member cap (MUSIC_MAX_QUEUED_PER_MEMBER)
    in ``channel``: Manage Channels there, or the DJ role when the server set one.
    Without a DJ role everyone controls, so that alone exempts nobody."""
    if channel.permissions_for(member).manage_channels:
        return True
    return rules.dj_role_id is not None and any(
        role.id == rules.dj_role_id for role in member.roles
    )


def dj_refusal(guild: discord.Guild, rules: MusicSettings | None) -> str:
    role = guild.get_role(rules.dj_role_id) if rules and rules.dj_role_id else None
    name = f"**{clean(role.name, 50)}**" if role else "DJ"
    return f"Only people with the {name} role (or Manage Channels) can do that here."


@dataclass(frozen=True, slots=True)
class Vote:
    """Where a skip vote stands: ``votes`` of the ``needed`` (more than half of
    ``listeners``); ``passed`` when the track is skipped."""

    votes: int
    needed: int
    listeners: int
    new: bool
    """False when this member had voted already."""

    @property
    def passed(self) -> bool:
        return self.votes >= self.needed

    def message(self, title: str) -> str:
        if self.passed:
            return f"⏭️ Skipped {clean(title)} ({self.votes}/{self.needed} votes)."
        again = "" if self.new else "You voted already: "
        return (
            f"🗳️ {again}{self.votes}/{self.needed} votes to skip {clean(title)} "
            f"(more than half of the {self.listeners} listeners)."
        )


STOPPED = "⏹️ Stopped the music and cleared the queue."
"""What /stop and the Stop button say."""


def skip_note(track: Track, vote: Vote | None) -> str:
    """What /skip, the button and the AI tool say: skipped, or where the vote stands."""
    return vote.message(track.title) if vote else f"⏭️ Skipped {clean(track.title)}."


class SkipVotes:
    """Each guild's votes to skip its current track: reset when another play starts (a
    loop's repeat is the same play) or the track is skipped."""

    def __init__(self) -> None:
        self._votes: dict[int, tuple[Track, set[int]]] = {}

    def vote(self, guild_id: int, member_id: int, track: Track, listeners: list[int]) -> Vote:
        """Count ``member_id``'s vote to skip ``track``; only people listening now count.
        Votes cast against another track (one that ended before this one loaded) are
        dropped."""
        voters = self._voters(guild_id, track)
        self._votes[guild_id] = (track, voters)
        new = member_id not in voters
        voters.add(member_id)
        return self._tally(voters, listeners, new)

    def recount(self, guild_id: int, track: Track, listeners: list[int]) -> Vote | None:
        """Where the votes to skip ``track`` stand now that the listeners changed; None
        without votes."""
        voters = self._voters(guild_id, track)
        return self._tally(voters, listeners, new=False) if voters else None

    def _voters(self, guild_id: int, track: Track) -> set[int]:
        held = self._votes.get(guild_id)
        return held[1] if held is not None and held[0] is track else set()

    @staticmethod
    def _tally(voters: set[int], listeners: list[int], new: bool) -> Vote:
        voters &= set(listeners)
        return Vote(len(voters), len(listeners) // 2 + 1, len(listeners), new)

    def reset(self, guild_id: int) -> None:
        """A new track (or none): the votes were for the previous one."""
        self._votes.pop(guild_id, None)
