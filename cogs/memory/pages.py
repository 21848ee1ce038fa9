"""The pages of `/memory show`: one person's memories, a page at a time, with the
buttons that turn them (`MemoryPages`) and those of a server's list shown in DMs
(`AwayButton`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import discord

from utils.memory.records import Memory, Scope, age_text
from utils.memory.service import MemoryService
from utils.memory.stored import StoredMemories
from utils.pages import Pages, page_ids
from utils.text import truncate

PAGE_SIZE = 8
PAGES_TIMEOUT = 180.0  # seconds without a press before the page buttons come off
SHOWN_CHARS = 220
TITLE = "What I remember about you"  # then where: "in <server>", "in our DMs"
_SOURCES = {"conversation": "from our chat", "consolidation": "noticed", "user": "you told me"}


def counted(count: int) -> str:
    return f"{count:,} memory" if count == 1 else f"{count:,} memories"


def _line(memory: Memory, now: float) -> str:
    text = " / ".join(memory.text.splitlines())
    text = truncate(text, SHOWN_CHARS)
    source = _SOURCES[memory.source]
    return (
        f"`#{memory.id}` · {age_text(now - memory.created_at)} · {source}\n"
        f"> {discord.utils.escape_markdown(text)}"
    )


def away_ids(run: str, guild_id: int, page: int) -> tuple[str, str]:
    """The custom ids of the previous and next buttons of a server's list shown in DMs
    at `page`: each names the page it leads to."""
    return (
        f"memory:{run}:previous:{guild_id}:{page - 1}",
        f"memory:{run}:next:{guild_id}:{page + 1}",
    )


class AwayButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"memory:(?P<run>[0-9a-f]+):(?P<action>previous|next):(?P<guild>[0-9]+)"
    r"(?::(?P<page>[0-9]{1,9}))?",
):
    """A page button of a server's list shown in DMs, whichever run or process sent it:
    a press goes to the ``memory_away_press`` event with the run, the server and the page
    it leads to (a list sent before the ids named pages: the first). DMs come to shard
    0's process, which may not be the one that sent the list, and a restart loses its
    view: the event's handler then turns the page itself. (Not a
    :class:`~utils.pages.PageButton`: `/memory show` in the DMs would list the DM
    memories.)"""

    def __init__(self, run: str, action: str, guild_id: int, page: int) -> None:
        super().__init__(discord.ui.Button(custom_id=f"memory:{run}:{action}:{guild_id}:{page}"))
        self.run = run
        self.guild_id = guild_id
        self.page = page

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button[Any],
        match: re.Match[str],
        /,
    ) -> AwayButton:
        return cls(match["run"], match["action"], int(match["guild"]), int(match["page"] or 1))

    async def callback(self, interaction: discord.Interaction) -> None:
        interaction.client.dispatch(
            "memory_away_press", interaction, self.run, self.guild_id, self.page
        )


class MemoryPages(Pages):
    """Pages of one person's memories; only they can turn them. Each page is counted
    and read afresh (a memory may have been forgotten meanwhile). ``stuck`` gets the id
    of a list whose buttons could not be taken off at the timeout."""

    def __init__(
        self,
        service: MemoryService | StoredMemories,
        scope: Scope,
        user_id: int,
        page: int,
        where: str,
        run: str,
        *,
        stuck: Callable[[int], object],
        away: int | None = None,
    ) -> None:
        super().__init__(timeout=PAGES_TIMEOUT)
        self.command = "memory show"
        self.previous.custom_id, self.next.custom_id = (
            page_ids(run, self.command) if away is None else away_ids(run, away, page)
        )
        self.run = run
        self.service = service
        self.scope = scope
        self.user_id = user_id
        self.page = page
        self.where = where  # the place, as the title names it
        # The server whose list is shown in DMs, where /memory forget would forget the DM
        # memories instead.
        self.away = away
        self.stuck = stuck
        self.message: discord.Message | None = None
        # The last press, whose token outlives the timeout: the list's own (an ephemeral
        # follow-up, edited only through it) stops working 15 minutes after /memory show.
        self.pressed: discord.Interaction | None = None

    async def embed(self) -> discord.Embed:
        """The page `page` (the last one if there are fewer now)."""
        total = await self.service.count_of(self.scope, self.user_id)
        pages = max(1, -(-total // PAGE_SIZE))
        self.page = min(max(1, self.page), pages)
        memories = await self.service.memories_of(
            self.scope, self.user_id, offset=(self.page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        now = time.time()
        embed = discord.Embed(
            title=f"{TITLE} {self.where}",
            description="\n".join(_line(m, now) for m in memories) or "Nothing on this page.",
            colour=discord.Colour.blurple(),
        )
        forget = "/memory forget <number> deletes one, /memory forget all deletes them all"
        if self.away is not None:
            forget += f" (use them {self.where}, not here)"
        embed.set_footer(text=f"Page {self.page}/{pages} · {counted(total)} · {forget}")
        self.previous.disabled = self.page <= 1
        self.next.disabled = self.page >= pages
        if self.away is not None:
            self.previous.custom_id, self.next.custom_id = away_ids(self.run, self.away, self.page)
        return embed

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.user_id:
            return True
        await interaction.response.send_message("These are not your memories.", ephemeral=True)
        return False

    async def turn(self, interaction: discord.Interaction, step: int) -> None:
        """Show the page `step` pages on in answer to `interaction`'s press."""
        # The page is read from the database, which may be busy: acknowledge first (3 s).
        await interaction.response.defer()
        self.page += step
        await interaction.edit_original_response(embed=await self.embed(), view=self)
        self.pressed = interaction

    @discord.ui.button(label="Previous")
    async def previous(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self.turn(interaction, -1)

    @discord.ui.button(label="Next")
    async def next(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self.turn(interaction, +1)

    async def on_timeout(self) -> None:
        if self.message is None:
            return
        try:
            if self.pressed is not None:
                await self.pressed.edit_original_response(view=None)
            else:
                await self.message.edit(view=None)
        except discord.NotFound:  # the message is gone: nothing to tidy
            pass
        except discord.HTTPException:  # Discord unreachable: the buttons outlive this view
            self.stuck(self.message.id)
