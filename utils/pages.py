"""The previous/next buttons of lists paged for one person (`/queue`, `/history`,
`/memory show`), and what a press on them says once their view is gone.

A page view lives in the process that sent it: after a restart nothing handles its
buttons and Discord would show "This interaction failed". Their custom ids name the
bot's run (:attr:`bot.Bot.run_id`); :class:`PageButton` matches every page button and
hands a press to the ``page_press`` event, answered (admin cog) only for another run's.
A press the view fails to answer is handled by :class:`Pages`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from utils.errors import SORRY

log = logging.getLogger(__name__)


def page_ids(run: str, command: str) -> tuple[str, str]:
    """The custom ids of the previous and next buttons of `/command`'s pages in run `run`."""
    return f"pages:{run}:previous:{command}", f"pages:{run}:next:{command}"


class Pages(discord.ui.View):
    """A view of page buttons for `/command`'s list: a press it fails to answer is logged
    in one line (discord.py's default logs a traceback) and, for a bug, the presser gets
    a short answer instead of "This interaction failed"."""

    command: str

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        if isinstance(error, discord.HTTPException):  # the answer refused: a press too late...
            log.warning("could not answer a press of /%s's pages: %r", self.command, error)
            return
        log.error("a press of /%s's pages failed", self.command, exc_info=error)
        try:
            if interaction.response.is_done():  # acknowledged before the page was read
                await interaction.followup.send(SORRY, ephemeral=True)
            else:
                await interaction.response.send_message(SORRY, ephemeral=True)
        except (discord.HTTPException, discord.InteractionResponded) as failure:
            log.warning("could not answer a press of /%s's pages: %r", self.command, failure)


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"pages:(?P<run>[0-9a-f]+):(?P<action>previous|next):(?P<command>[a-z ]+)",
):
    """Any page button, whichever run sent it; a press goes to the ``page_press`` event
    with the run and the command that lists the pages."""

    def __init__(self, run: str, action: str, command: str) -> None:
        super().__init__(discord.ui.Button(custom_id=f"pages:{run}:{action}:{command}"))
        self.run = run
        self.command = command

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button[Any],
        match: re.Match[str],
        /,
    ) -> PageButton:
        return cls(match["run"], match["action"], match["command"])

    async def callback(self, interaction: discord.Interaction) -> None:
        interaction.client.dispatch("page_press", interaction, self.run, self.command)
