"""What people see of the music: the now-playing embed and its buttons, queue pages.

The control buttons are :class:`discord.ui.DynamicItem` s: they cost no per-message
state.  Each carries the player's :attr:`~cogs.music.player.Player.play_id` of the
track its message shows; a press is handed to the cog as the ``music_control`` event
(answered by :func:`cogs.music.buttons.press`), which acts only if that track is still
the one playing (a message left from an earlier track, or from before a restart, is
out of date).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import discord

from cogs.music.errors import MusicError
from cogs.music.tracks import LoopMode, Track
from utils.embeds import embed_text
from utils.pages import Pages, page_ids
from utils.text import DISCORD_LIMIT, counted, truncate, without_previews

if TYPE_CHECKING:
    from cogs.music.player import Player

BAR_WIDTH = 16
PER_PAGE = 10
QUEUE_VIEW_TIMEOUT = 180.0
COLOUR = discord.Colour.blurple()
AUTOPLAYED = "🔮 autoplay"
MAX_LINK = 200
"""Longer page URLs are not made links: a page of ten queue lines always fits an embed."""
_LINK_SYNTAX = re.compile(r"([\[\]()])")
_SPACES = re.compile(r"\s+")
_ENDS_LINK = re.compile(r"[\s<>]")
"""What would end a ``(<url>)`` link target early, the rest of the URL then being markdown."""


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "live"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def progress_bar(position: float, duration: float | None, width: int = BAR_WIDTH) -> str:
    """``▬▬▬🔘▬▬▬▬ 1:02 / 3:10`` (no bar for live streams or unknown lengths)."""
    if not duration:
        return f"{format_time(position)} / {format_time(duration)}"
    done = min(width - 1, int(width * max(0.0, position) / duration))
    bar = "▬" * done + "🔘" + "▬" * (width - 1 - done)
    return f"{bar} {format_time(min(position, duration))} / {format_time(duration)}"


def clean(text: str, limit: int = 100) -> str:
    """A title safe to put in a message: `escaped`, and a web address in it shown
    without a preview of its page (an embed under the message)."""
    return without_previews(escaped(text, limit))


def escaped(text: str, limit: int = 100) -> str:
    """A title safe in an embed: one line (its line breaks would break its link, or pass
    for lines of the bot's own), no markdown tricks (a masked link of its own included:
    brackets and parentheses are escaped too), no pings, at most `limit` characters."""
    pieces = _LINK_SYNTAX.split(_SPACES.sub(" ", text))  # odd: the brackets and parentheses
    text = "".join(
        f"\\{piece}" if index % 2 else discord.utils.escape_markdown(piece)
        for index, piece in enumerate(pieces)
    )
    return truncate(discord.utils.escape_mentions(text), limit)


def track_line(track: Track) -> str:
    """A track in an embed (no previews there), linked to its page where it can be."""
    title, url = escaped(track.title), track.page_url
    linkable = url and len(url) <= MAX_LINK and not _ENDS_LINK.search(url)
    name = f"[{title}](<{url}>)" if linkable else f"**{title}**"
    mark = f" {AUTOPLAYED}" if track.autoplay else ""
    return f"{name} `{format_time(track.duration)}`{mark}"


def now_playing_embed(
    track: Track,
    *,
    position: float,
    paused: bool,
    loop: LoopMode,
    volume: int,
    upcoming: int,
    loading: bool = False,
) -> discord.Embed:
    embed = discord.Embed(
        title="Loading" if loading else "Paused" if paused else "Now playing",
        description=f"{track_line(track)}\n\n{progress_bar(position, track.duration)}",
        colour=COLOUR,
    )
    requester = AUTOPLAYED if track.autoplay else f"<@{track.requester_id}>"
    embed.add_field(name="Requested by", value=requester)
    embed.add_field(name="Loop", value=loop.value)
    embed.add_field(name="Volume", value=f"{volume} %")
    embed.set_footer(text=f"{upcoming} up next" if upcoming else "Nothing up next")
    return embed


class ControlButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"music:(?P<action>[a-z]+)(?::(?P<play>[0-9a-f]+))?",
):
    """One control of the now-playing message of a track's play (``play``: the player's
    ``play_id`` then; None on messages sent before buttons carried it); the cog handles
    the press."""

    ACTIONS = {
        "toggle": ("Pause", "⏸️", discord.ButtonStyle.secondary),
        "skip": ("Skip", "⏭️", discord.ButtonStyle.secondary),
        "stop": ("Stop", "⏹️", discord.ButtonStyle.danger),
        "loop": ("Loop", "🔁", discord.ButtonStyle.secondary),
        "shuffle": ("Shuffle", "🔀", discord.ButtonStyle.secondary),
    }

    def __init__(self, action: str, play: str | None, *, label: str | None = None) -> None:
        default, emoji, style = self.ACTIONS.get(action, (action, None, discord.ButtonStyle.grey))
        custom_id = f"music:{action}:{play}" if play else f"music:{action}"
        super().__init__(
            discord.ui.Button(label=label or default, emoji=emoji, style=style, custom_id=custom_id)
        )
        self.action = action
        self.play = play

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button[Any],
        match: re.Match[str],
        /,
    ) -> ControlButton:
        return cls(match["action"], match["play"])

    async def callback(self, interaction: discord.Interaction) -> None:
        interaction.client.dispatch("music_control", interaction, self.action, self.play)


def controls(*, paused: bool, loop: LoopMode, play: str | None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ControlButton("toggle", play, label="Resume" if paused else "Pause"))
    view.add_item(ControlButton("skip", play))
    view.add_item(ControlButton("stop", play))
    view.add_item(ControlButton("loop", play, label=f"Loop: {loop.value}"))
    view.add_item(ControlButton("shuffle", play))
    return view


def shown_as(message: discord.Message | None, embed: discord.Embed) -> dict[str, Any]:
    """How an edit of ``message`` shows ``embed``: as text if the message is text (it was
    sent where the bot may not embed, see utils.embeds)."""
    if message is not None and message.content:
        return {"content": truncate(embed_text(embed), DISCORD_LIMIT), "embed": None}
    return {"embed": embed}


def player_embed(player: Player, track: Track) -> discord.Embed:
    return now_playing_embed(
        track,
        position=player.position,
        paused=player.paused,
        loop=player.queue.loop,
        volume=player.volume,
        upcoming=len(player.queue),
        loading=player.loading,
    )


def player_controls(player: Player) -> discord.ui.View:
    return controls(paused=player.paused, loop=player.queue.loop, play=player.play_id)


def queue_page(player: Player | None, number: int) -> tuple[discord.Embed, int, int]:
    """A page of a guild's queue, as it is now (its player looked up at each press:
    stopped, or replaced by a new one); MusicError once it is empty."""
    if player is None or (player.queue.current is None and not len(player.queue)):
        raise MusicError("The queue is empty.")
    entries, page, pages = player.queue.page(number, PER_PAGE)
    embed = queue_embed(
        player.queue.current,
        entries,
        page=page,
        pages=pages,
        total=len(player.queue),
        loop=player.queue.loop,
    )
    return embed, page, pages


PageRenderer = Callable[[int], tuple[discord.Embed, int, int]]
"""``page → (embed, page shown, page count)``: rendered from the live list at each press;
a MusicError when there is nothing left to show."""


class QueuePages(Pages):
    """Previous/next buttons over the pages of a list (the queue, the history), for the person
    who asked for it with `/command`; ``stuck`` gets the id of a message whose buttons could
    not be taken off at the timeout (:meth:`~cogs.music.cog.Music.on_page_press`)."""

    def __init__(
        self,
        render: PageRenderer,
        *,
        owner_id: int,
        run: str,
        stuck: Callable[[int], object],
        page: int = 1,
        command: str = "queue",
    ) -> None:
        super().__init__(timeout=QUEUE_VIEW_TIMEOUT)
        self.previous.custom_id, self.next.custom_id = page_ids(run, command)
        self.render = render
        self.owner_id = owner_id
        self.page = page
        self.command = command
        self.stuck = stuck
        self.message: discord.Message | None = None

    def first_page(self) -> discord.Embed:
        embed, self.page, pages = self.render(self.page)
        self._update_buttons(pages)
        return embed

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            f"These buttons belong to whoever asked; use `/{self.command}` to page through it "
            "yourself.",
            ephemeral=True,
        )
        return False

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        await self._show(interaction, self.page - 1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        await self._show(interaction, self.page + 1)

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        try:
            embed, self.page, pages = self.render(page)
        except MusicError as error:  # nothing left to page through (the queue was stopped)
            self.stop()
            gone = discord.Embed(description=str(error), colour=COLOUR)
            await interaction.response.edit_message(
                **shown_as(interaction.message, gone), view=None
            )
            return
        self._update_buttons(pages)
        await interaction.response.edit_message(**shown_as(interaction.message, embed), view=self)
        # The message as the channel has it: /queue's reply edited through its interaction
        # would fail once that is 15 minutes old, leaving dead buttons at the timeout.
        self.message = interaction.message

    def _update_buttons(self, pages: int) -> None:
        self.previous.disabled = self.page <= 1
        self.next.disabled = self.page >= pages

    async def on_timeout(self) -> None:
        if self.message is None:
            return
        try:
            await self.message.edit(view=None)
        except discord.HTTPException:  # Discord unreachable: the buttons outlive this view
            self.stuck(self.message.id)


def queue_embed(
    current: Track | None,
    entries: list[tuple[int, Track]],
    *,
    page: int,
    pages: int,
    total: int,
    loop: LoopMode,
) -> discord.Embed:
    """The current track and a page of the upcoming ones, in the description (4096
    characters: ten lines of :func:`track_line` always fit)."""
    parts = [f"**Now playing**\n{track_line(current)}"] if current is not None else []
    lines = [f"`{number}.` {track_line(track)}" for number, track in entries]
    parts.append(f"**Up next ({total})**\n" + ("\n".join(lines) or "Nothing."))
    embed = discord.Embed(title="Queue", colour=COLOUR, description="\n\n".join(parts))
    embed.set_footer(text=f"Page {page}/{pages} · loop: {loop.value}")
    return embed


class Cut(StrEnum):
    """Why a play request may queue fewer tracks than its link holds."""

    QUEUE = "that's all the queue takes now"
    SHARE = "that's as many as one person may have waiting in the queue here"
    PLAYLIST = "that's the most one playlist adds at a time"


class Room(NamedTuple):
    """How many tracks a member may add now, and what sets that number."""

    count: int
    cut: Cut


@dataclass(frozen=True)
class Queued:
    """What a play request added: the tracks, the playlist or album name, whether
    something was playing already and the queue position of the first one."""

    tracks: list[Track]
    name: str | None
    busy: bool
    position: int
    total: int | None = None
    """How many tracks were asked for, when known."""
    cut: Cut = Cut.QUEUE
    """What stopped the queueing when fewer than ``total`` were queued."""
    note: str | None = None
    """How the link was read, when worth saying (:attr:`~cogs.music.tracks.Found.note`)."""

    @property
    def left_out(self) -> int:
        return max(0, (self.total or 0) - len(self.tracks))

    def message(self) -> str:
        return f"{self._summary()} {self.note}" if self.note else self._summary()

    def _summary(self) -> str:
        if len(self.tracks) > 1 or self.name:
            source = f" from **{clean(self.name)}**" if self.name else ""
            if self.left_out:
                return (
                    f"➕ Queued {len(self.tracks)} of {counted(self.total or 0, 'track')}"
                    f"{source}: {self.cut}."
                )
            return f"➕ Queued {counted(len(self.tracks), 'track')}{source}."
        title = clean(self.tracks[0].title)
        if not self.busy:
            return f"▶️ Playing {title}."
        return f"➕ Queued {title} (#{self.position})."
