"""Playing scenes: every message in a scene's channel is answered by the characters.

`SceneDirector` is the roleplay cog's `cogs.ai.directors.Director`: the AI cog asks it
whether a channel runs a scene and, for each message there, for the reply's
`Direction`: the scene's system instruction, a `SceneSplitter` that cuts the script at
speakers, and a `SceneSink` that sends each character's lines through the channel
webhook with its name and avatar (narration as the bot; where slowmode holds the bot's
own messages, narration and the turn limit's notice go through the webhook too, with the
bot's name and avatar: slowmode spares webhooks). After each turn the scene's
state is updated in the background through structured output, one update at a time
per channel, so the reply never waits for it; an update goes only to the scene whose
exchanges it read, never to one started in the channel since. Turns are counted once
their reply went out, toward their own scene only; the last one allowed
(`RP_MAX_SCENE_TURNS`) ends the scene with a notice, and so does a message to a scene
whose characters are all gone. A scene that ends leaves its lines out of what is said
next in its channel (`end`).

A scene plays only while the bot may write in its channel, as when it started: its
narration and notices are the bot's own messages, and a moderator who mutes the bot
there mutes its characters too (their webhooks would not be refused). Meanwhile its
messages get no reply, and the scene's starter is told once, in a direct message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.ext import commands

from cogs.ai.directors import Direction
from cogs.ai.records import Place
from cogs.ai.replies import NO_PINGS, Held, Sent, place_of
from cogs.ai.streaming import WRITING_MARKER, Editable
from cogs.roleplay.avatar_links import AvatarLinks
from cogs.roleplay.characters import CharacterStore
from cogs.roleplay.errors import RoleplayError
from cogs.roleplay.scene_prompt import scene_instruction
from cogs.roleplay.scene_state import INSTRUCTION, SCHEMA, merge, render, updates_in
from cogs.roleplay.scenes import Scene, SceneStore
from cogs.roleplay.script import NARRATOR, SceneSplitter, speaker_of
from cogs.roleplay.webhook_names import TEXT_LIMIT
from cogs.roleplay.webhooks import DISCORD_TIMEOUT, Channel, WebhookSender
from utils.errors import BotError
from utils.slowmode import held_by_slowmode
from utils.tasks import log_failure
from utils.text import counted

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

PENDING_EXCHANGES = 4  # exchanges waiting for a state update, per scene (older ones go)
ENDED = "🎬 This scene reached its limit of {turns} and has ended. `/scene start` begins a new one."
CAST_GONE = "🎬 This scene has ended: its characters were deleted. `/scene start` begins a new one."
PAUSED = (
    "🎬 Your scene in {channel} is paused: I may no longer send messages there, so its "
    "characters keep quiet too. It goes on once I may write there again; `/scene end` "
    "there ends it."
)
PAUSED_CHANNELS = 1000  # paused scenes whose starter was told (the oldest are forgotten)


def may_write(permissions: discord.Permissions, channel: Channel) -> bool:
    """Whether `permissions` allow sending messages in `channel` (or thread; a locked one
    takes messages only from those who manage threads)."""
    if isinstance(channel, discord.Thread):
        locked_out = channel.locked and not permissions.manage_threads
        return permissions.send_messages_in_threads and not locked_out
    return permissions.send_messages


class _Line:
    """A message of the scene; an edit keeps its speaker (a `streaming.Editable`)."""

    def __init__(self, message: Editable) -> None:
        self.message = message

    @property
    def id(self) -> int:
        return self.message.id

    async def edit(self, *, content: str) -> None:
        await self.message.edit(content=speaker_of(content)[1])


class SceneSink:
    """Sends each message of a scene turn as its speaker (a `streaming.Sink`)."""

    def __init__(
        self,
        sender: WebhookSender,
        channel: Channel,
        avatars: dict[str, str | None],
        *,
        slowmode: bool = False,
    ) -> None:
        self.sender = sender
        self.channel = channel
        self.avatars = avatars  # character name -> avatar URL
        self.slowmode = slowmode  # slowmode holds the bot's own messages in the channel

    async def send(self, content: str) -> _Line:
        try:
            return await self._send(content)
        except discord.RateLimited as error:  # a long slowmode where no webhook spares it
            raise Held.by(error) from error

    async def _send(self, content: str) -> _Line:
        speaker, text = speaker_of(content)
        if speaker != NARRATOR and speaker in self.avatars:
            avatar_url = self.avatars[speaker]
            return _Line(
                await self.sender.send(self.channel, text, name=speaker, avatar_url=avatar_url)
            )
        if self.slowmode:  # through the webhook, which slowmode spares, as the bot
            return _Line(await self.sender.send_as_bot(self.channel, text))
        async with asyncio.timeout(DISCORD_TIMEOUT):
            message = await self.channel.send(text, allowed_mentions=NO_PINGS)
        return _Line(Sent(message))


class SceneDirector:
    """Directs the replies in channels running a scene (see the module docstring)."""

    def __init__(
        self,
        bot: Bot,
        scenes: SceneStore,
        characters: CharacterStore,
        links: AvatarLinks,
        sender: WebhookSender,
    ) -> None:
        self.bot = bot
        self.scenes = scenes
        self.characters = characters
        self.links = links
        self.sender = sender
        # channel id -> (start of the scene, exchange) waiting for a state update
        self._pending: dict[int, deque[tuple[float, str]]] = {}
        self._updating: dict[int, asyncio.Task[None]] = {}
        # channels whose paused scene's starter was told so, the least recent first
        self._paused: OrderedDict[int, None] = OrderedDict()

    def directs(self, channel_id: int) -> bool:
        return self.scenes.running(channel_id)

    async def direction(self, ctx: Context) -> Direction | None:
        channel = ctx.channel
        if not isinstance(channel, discord.TextChannel | discord.VoiceChannel | discord.Thread):
            return None
        guild = self.bot.get_guild(channel.guild.id)  # the cache as it is now
        if guild is None or guild.get_channel_or_thread(channel.id) is None:
            return None  # deleted, or the bot removed, while the message waited: no one sees it
        scene = await self.scenes.get(channel.id)
        if scene is None:
            return None
        if not may_write(channel.permissions_for(channel.guild.me), channel):
            await self._tell_paused(scene, channel)
            return None
        self._paused.pop(channel.id, None)  # it may write (again): a new pause is told
        cast = await self.characters.by_ids(scene.guild_id, scene.characters)
        if not cast:  # all deleted meanwhile (a deletion racing `/scene start`, say)
            await self.end(scene.guild_id, channel.id)
            raise RoleplayError(CAST_GONE)
        # At once, not one after another: each may wait on Discord (a renewal, an upload)
        # before the reply starts, and a cast is at most MAX_CAST characters.
        slowmode = held_by_slowmode(ctx)
        through = self.sender if slowmode else None  # an avatar uploaded again, say
        urls = await asyncio.gather(
            *(self.links.avatar_url(c, channel, sender=through) for c in cast)
        )
        avatars = {c.name: url for c, url in zip(cast, urls, strict=True)}
        world = scene.world or await self.scenes.world(scene.guild_id)
        where = f"#{channel.name} of the server {channel.guild.name}"
        said = f"{ctx.author.display_name}: {ctx.message.content}"
        sink = SceneSink(self.sender, channel, avatars, slowmode=slowmode)
        place = place_of(ctx)

        async def after(text: str) -> None:
            self.update_later(scene, place, f"{said}\n{text}")
            limit = self.bot.settings.rp_max_scene_turns
            # Of this scene only: it may have ended, and another started, while it was written.
            if await self.scenes.count_turn(channel.id, scene.started_at) >= limit:
                await self.end(scene.guild_id, channel.id)
                await sink.send(ENDED.format(turns=counted(limit, "turn")))  # as narration

        return Direction(
            system=scene_instruction(cast, world, scene.state, where),
            sink=sink,
            splitter=SceneSplitter(avatars, TEXT_LIMIT, WRITING_MARKER),
            after=after,
        )

    async def end(self, guild_id: int, channel_id: int) -> bool:
        """End the scene of a channel (False: none ran). What is said there next starts
        afresh, without the scene's lines; they stay in the channel's stored history."""
        ended = await self.scenes.end(channel_id)
        self._paused.pop(channel_id, None)  # a scene started there next is told anew
        await self.bot.chats.start_afresh(guild_id, channel_id)
        return ended

    async def _tell_paused(self, scene: Scene, channel: Channel) -> None:
        """Tell the scene's starter, once per pause, why it gets no reply."""
        if channel.id in self._paused:
            return
        self._paused[channel.id] = None
        if len(self._paused) > PAUSED_CHANNELS:
            self._paused.popitem(last=False)
        log.info("the scene in channel %s is paused: I may not write there", channel.id)
        try:
            async with asyncio.timeout(DISCORD_TIMEOUT):
                starter = self.bot.get_user(scene.owner_id) or await self.bot.fetch_user(
                    scene.owner_id
                )
                await starter.send(
                    PAUSED.format(channel=channel.mention), allowed_mentions=NO_PINGS
                )
        # DMs closed, a connection reset, Discord holding back new DMs (RateLimited)...
        except (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, OSError) as error:
            log.info("could not tell the starter of the scene in %s: %r", channel.id, error)

    def update_later(self, scene: Scene, place: Place, exchange: str) -> None:
        """Fold what `exchange` established into `scene`'s state, in the background, at
        the safety level of its channel (`place`), as its replies."""
        if self.bot.gemini is None:
            return
        channel_id = scene.channel_id
        pending = self._pending.setdefault(channel_id, deque(maxlen=PENDING_EXCHANGES))
        pending.append((scene.started_at, exchange))
        if channel_id in self._updating:
            return  # the running update takes it next
        task = asyncio.create_task(self._update(place), name=f"rp-state-{channel_id}")
        self._updating[channel_id] = task
        task.add_done_callback(log_failure)

    async def _update(self, place: Place) -> None:
        channel_id = place.channel_id
        try:
            await self._update_while_pending(place)
        finally:  # no await since the last look at the pending exchanges: none is missed
            self._updating.pop(channel_id, None)
            self._pending.pop(channel_id, None)

    async def _update_while_pending(self, place: Place) -> None:
        assert self.bot.gemini is not None
        channel_id, prefs = place.channel_id, self.bot.chats.prefs
        while pending := self._pending.pop(channel_id, None):
            scene = await self.scenes.get(channel_id)
            if scene is None:
                return
            exchanges = [text for started, text in pending if started == scene.started_at]
            if not exchanges:  # all of a scene that ended since
                continue
            notes = render(scene.state) or "(none yet)"
            request: list[Any] = [
                {
                    "role": "user",
                    "parts": [
                        {
                            "text": f"Notes so far:\n{notes}\n\nLatest exchange:\n"
                            + "\n\n".join(exchanges)
                        }
                    ],
                }
            ]
            # Google's default filter would block what the channel's level let through;
            # the server's model (`/ai model`), as the scene's replies.
            safety = (await prefs.followed(place, await prefs.channel(channel_id))).safety
            model = (await prefs.guild(scene.guild_id)).model
            try:
                reply = await self.bot.gemini.generate(
                    request, system=INSTRUCTION, schema=SCHEMA, safety=safety, model=model
                )
            except BotError as error:
                log.warning("state update of scene %s failed: %s", channel_id, error)
                continue
            await self.bot.usage.record(
                scene.guild_id, reply.usage.prompt_tokens, reply.usage.output_tokens
            )
            # Onto the state as it is now (a correction may have come meanwhile), and only
            # of that scene: what it established is not the next one's.
            updates = updates_in(reply.text)
            await self.scenes.change_state(
                channel_id, scene.started_at, lambda state, updates=updates: merge(state, updates)
            )

    async def close(self) -> None:
        tasks = list(self._updating.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
