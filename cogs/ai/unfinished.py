"""Finalising the replies the last run left marked as being written (it died, or Discord
failed at its shutdown): their last message loses the writing marker and gets the
restart note, and the history marks them cut off."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
import discord

from cogs.ai.records import Unfinished
from cogs.ai.replies import NO_PINGS
from cogs.ai.streaming import RESTART, after_crash
from utils.errors import BotError

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

UNFINISHED_TIMEOUT = 10.0  # seconds to fetch and edit the last message of each


async def finish_unfinished(bot: Bot, replies: list[Unfinished]) -> None:
    """Finalise replies the last run left marked as being written (it died, or Discord
    failed at its shutdown), once the bot is ready: the last message of each loses the
    writing marker and gets the restart note (a character's through the bot's webhook,
    what no longer fits following as that character), and the history marks the reply
    cut off by a restart. A message that is gone, or that the bot can't see or edit (an
    ephemeral or user-app reply, a webhook not the bot's), is only marked in the
    history. One that shows its final text (only storing that failed) was shown whole:
    the history marks it whole, not cut off."""
    if not replies:
        return
    await bot.wait_until_ready()
    for reply in replies:
        cut_off = True
        try:
            async with asyncio.timeout(UNFINISHED_TIMEOUT):
                cut_off = await _finish_message(bot, reply)
        except (
            discord.HTTPException,
            discord.RateLimited,  # a long slowmode holding the part that follows
            aiohttp.ClientError,
            OSError,
            BotError,
        ) as error:
            # OSError: timeouts too; BotError: a thread whose channel I can't find
            log.info("the last message of unfinished reply %s stays as it is: %r", reply, error)
        await bot.chats.mark_unfinished(reply, RESTART if cut_off else None)
    log.info("finalised %d replies the last run left unfinished", len(replies))


async def _finish_message(bot: Bot, reply: Unfinished) -> bool:
    """Finalise the last message of `reply`; False if it shows the reply's final text."""
    if reply.message_id is None:  # stored before replies kept their message
        return True
    channel = bot.get_partial_messageable(reply.channel_id)
    message = await channel.fetch_message(reply.message_id)
    contents = after_crash(message.content)
    if contents is None:  # its final text was shown after all
        return False
    # Discord marks the messages of an interaction (a `/chat` reply) with the application's
    # id as their webhook's: those are the bot's own, edited as any other of its messages.
    if message.webhook_id not in (None, bot.application_id):
        if not await _finish_as_character(bot, reply.channel_id, message, contents):
            log.info("unfinished reply %s was sent by a webhook that is not mine", reply)
        return True
    first, *rest = contents
    await message.edit(content=first, allowed_mentions=NO_PINGS)
    for content in rest:
        await channel.send(content, allowed_mentions=NO_PINGS)
    return True


async def _finish_as_character(
    bot: Bot, channel_id: int, message: discord.Message, contents: list[str]
) -> bool:
    """Finalise a character's message (a webhook's, in a roleplay scene) as that character:
    the bot's token may not edit it, only the webhook that sent it, and what no longer
    fits follows with the character's name and avatar. False if that webhook is not the
    bot's."""
    from cogs.roleplay.webhooks import Channel, WebhookSender  # cogs.roleplay imports cogs.ai

    channel = bot.get_channel(channel_id) or await bot.fetch_channel(channel_id)
    if not isinstance(channel, Channel):
        return False
    sender = WebhookSender(bot)
    first, *rest = contents
    if not await sender.edit_after_restart(channel, message, first):
        return False
    avatar = message.author.avatar
    url = avatar.url if avatar is not None else None
    for content in rest:
        await sender.send(channel, content, name=message.author.name, avatar_url=url)
    return True
