"""The `/scene` commands: scenes with the server's characters in a channel or thread.

Anyone who can write in a channel may start a scene there when none runs (a thread of
one's own is the usual place). The scene's owner, or anyone with Manage Messages in the
channel, adds and removes characters, corrects the state and ends it. The server's
world text takes Manage Server. Playing needs no command: while a scene runs, every
message in its channel is answered (`director.SceneDirector`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.ai.cog import NOT_CONFIGURED
from cogs.ai.records import Turn
from cogs.roleplay.avatar_links import AvatarLinks
from cogs.roleplay.characters import Character, CharacterStore
from cogs.roleplay.director import CAST_GONE, SceneDirector, may_write
from cogs.roleplay.errors import RoleplayError
from cogs.roleplay.scene_cast import MAX_CAST, cut_world, split_names
from cogs.roleplay.scene_prompt import WORLD_CHARS, fill
from cogs.roleplay.scene_state import CLEAR, MAX_FACT, MAX_NAME, noted, render, set_fact
from cogs.roleplay.scenes import Scene, SceneStore
from cogs.roleplay.webhook_names import TEXT_LIMIT
from cogs.roleplay.webhooks import DISCORD_TIMEOUT, NO_PINGS, Channel, WebhookSender
from utils.checks import needs_guild
from utils.commands import list_subcommands
from utils.embeds import embed_text, send_embeds
from utils.errors import BotError
from utils.memory.chatlog import BOT_LABEL
from utils.slowmode import held_by_slowmode, holds_bot
from utils.text import name_key, split_message, truncate

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

CHANGED = "The scene changed meanwhile; please try again."
NO_SCENE = "No scene is running here; `/scene start` begins one."
Fact = Literal["location", "condition", "relationships", "possessions", "goals"]
Kind = Literal["character", "place", "item"]


class Scenes(commands.Cog):
    """Roleplay scenes: the server's characters play in a channel or thread."""

    def __init__(
        self, bot: Bot, characters: CharacterStore, links: AvatarLinks, sender: WebhookSender
    ) -> None:
        self.bot = bot
        self.characters = characters
        self.links = links
        self.scenes = SceneStore(bot.db)
        self.sender = sender
        self.director = SceneDirector(bot, self.scenes, characters, links, self.sender)

    async def cog_load(self) -> None:
        await self.scenes.load()
        self.bot.data_owners.register("roleplay scenes", self.scenes)
        self.bot.db.on_change(self.scenes.changed)
        self.bot.directors.register(self.director)

    async def cog_unload(self) -> None:
        self.bot.directors.unregister(self.director)
        self.bot.data_owners.unregister("roleplay scenes")
        self.bot.db.off_change(self.scenes.changed)
        await self.director.close()

    def cog_check(self, ctx: Context) -> bool:
        return needs_guild(ctx)

    @commands.Cog.listener()
    async def on_webhooks_update(self, channel: discord.abc.GuildChannel) -> None:
        """A webhook of `channel` was made, edited, moved or deleted: perhaps ours, which
        would then speak elsewhere or not at all."""
        self.sender.forget_channel(channel.id, channel.guild.id)

    @commands.Cog.listener()
    async def on_character_deleted(self, character: Character) -> None:
        """A deleted character leaves its scenes; one left empty ends with a notice."""
        guild = self.bot.get_guild(character.guild_id)
        for channel_id in await self.scenes.remove_character(character.guild_id, character.id):
            await self.bot.chats.start_afresh(character.guild_id, channel_id)
            channel = guild and guild.get_channel_or_thread(channel_id)
            try:
                if isinstance(channel, Channel) and holds_bot(channel):  # as its narration
                    await self.sender.send_as_bot(channel, CAST_GONE)
                else:
                    async with asyncio.timeout(DISCORD_TIMEOUT):
                        await self.bot.get_partial_messageable(channel_id).send(
                            CAST_GONE, allowed_mentions=NO_PINGS
                        )
            # RateLimited: a long slowmode holds it, not waited out; BotError: a webhook moved
            except (discord.HTTPException, discord.RateLimited, TimeoutError, BotError) as error:
                log.warning("could not say in %s that its scene ended: %s", channel_id, error)

    @commands.hybrid_group(name="scene", case_insensitive=True)
    @commands.guild_only()
    async def scene(self, ctx: Context) -> None:
        """Roleplay scenes in this channel."""
        if ctx.invoked_subcommand is None:
            await list_subcommands(ctx, self.scene)

    @scene.command(name="start", usage="<characters> [| world]")
    @app_commands.describe(
        characters=f"Up to {MAX_CAST} character names, separated by commas",
        world="The world or situation of this scene (else the server's world)",
    )
    async def start(self, ctx: Context, *, characters: str, world: str | None = None) -> None:
        """Start a scene here: the characters answer every message until `/scene end`.

        Typed as a command, the names take the line; a world follows a `|`:
        `!scene start Aria, Bren | A rainy port town`.
        """
        assert ctx.guild is not None
        if self.bot.gemini is None:  # its every turn is the AI's
            raise RoleplayError(NOT_CONFIGURED)
        channel = _channel(ctx)
        # A slash command needs no right to write: a scene would post in a channel its
        # starter may only read (an announcements channel, say).
        if not may_write(ctx.permissions, channel):
            raise RoleplayError("You can't write here, so you can't start a scene here.")
        # The narration and notices of a scene are the bot's own messages (the permissions
        # of its channel: an interaction's are said to allow sending, whatever they are).
        if not may_write(channel.permissions_for(channel.guild.me), channel):
            raise RoleplayError("I can't write here, so I can't run a scene here.")
        known = {name_key(c.name) for c in await self.characters.listing(ctx.guild.id)}
        if ctx.interaction is None:  # the names consumed the line, the world with them
            characters, world = cut_world(characters, known)
        world = _given(world)  # a blank world is none: the server's applies
        names = list(dict.fromkeys(split_names(characters, known)))
        if not names or len(names) > MAX_CAST:
            raise RoleplayError(f"Name one to {MAX_CAST} characters, separated by commas.")
        if world is not None and len(world) > WORLD_CHARS:
            raise RoleplayError(f"Keep the world to {WORLD_CHARS:,} characters at most.")
        found = [await self._character(ctx, name) for name in names]
        cast = list({c.id: c for c in found}.values())  # "Aria, aria" is Aria once
        await ctx.defer()
        await self.scenes.start(
            ctx.guild.id, channel.id, ctx.author.id, [c.id for c in cast], world
        )
        # The scene reads none of what was said here before it (another scene, say).
        await self.bot.chats.start_afresh(ctx.guild.id, channel.id)
        await self._say(
            ctx,
            f"🎬 A scene begins with {_names(cast)}. Write here to play (no mention needed); "
            "address a character by name. `/scene end` ends it.",
        )
        try:
            await self._open(ctx, channel, cast)
        except discord.RateLimited as error:  # no webhook here, and slowmode holds the bot
            log.warning("scene started in %s without its first messages: %s", channel.id, error)

    async def _open(self, ctx: Context, channel: Channel, cast: list[Character]) -> None:
        """Each character's first message, as itself (a long one over several messages);
        the log keeps them whole for the model."""
        lines, last_id = [], None
        through = self.sender if held_by_slowmode(ctx) else None  # see `avatar_url`
        for character in cast:
            first = fill(character.profile.first_message, character.name, ctx.author.display_name)
            if not first.strip():
                continue
            avatar_url = await self.links.avatar_url(character, channel, sender=through)
            for text in split_message(first.strip(), TEXT_LIMIT):
                spoken = await self.sender.send(
                    channel, text, name=character.name, avatar_url=avatar_url
                )
                last_id = spoken.id
            lines.append(f"{character.name}: {first.strip()}")
        if last_id is None:
            return
        opened = Turn("user", ctx.author.id, ctx.author.display_name, "(starts the scene)")
        said = Turn("model", 0, BOT_LABEL, "\n".join(lines), last_id)
        await self.bot.chats.add_turns(ctx.guild and ctx.guild.id, channel.id, [opened, said])

    @scene.command(name="add")
    @app_commands.describe(character="The character who joins")
    async def add(self, ctx: Context, *, character: str) -> None:
        """Bring a character into this scene (its owner, or Manage Messages)."""
        scene = await self._changeable(ctx)
        joining = await self._character(ctx, character)
        if joining.id in scene.characters:
            raise RoleplayError(f"**{_md(joining.name)}** is already in this scene.")
        cast = await self.characters.by_ids(scene.guild_id, scene.characters)  # deleted: gone
        if len(cast) >= MAX_CAST:
            raise RoleplayError(f"A scene has at most {MAX_CAST} characters.")
        joined = [*(c.id for c in cast), joining.id]
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        if not await self.scenes.set_characters(scene.channel_id, joined, was=scene.characters):
            raise RoleplayError(CHANGED)
        await self._say(ctx, f"**{_md(joining.name)}** joins the scene.")

    @scene.command(name="remove")
    @app_commands.describe(character="The character who leaves")
    async def remove(self, ctx: Context, *, character: str) -> None:
        """Take a character out of this scene (its owner, or Manage Messages)."""
        scene = await self._changeable(ctx)
        leaving = await self._character(ctx, character)
        if leaving.id not in scene.characters:
            raise RoleplayError(f"**{_md(leaving.name)}** is not in this scene.")
        if len(scene.characters) == 1:
            raise RoleplayError("That is the last character; `/scene end` ends the scene.")
        left = [i for i in scene.characters if i != leaving.id]
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        if not await self.scenes.set_characters(scene.channel_id, left, was=scene.characters):
            raise RoleplayError(CHANGED)
        await self._say(ctx, f"**{_md(leaving.name)}** leaves the scene.")

    @scene.command(name="end")
    async def end(self, ctx: Context) -> None:
        """End the scene here (its owner, or Manage Messages)."""
        scene = await self._changeable(ctx)
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        if not await self.director.end(scene.guild_id, scene.channel_id):
            raise RoleplayError(NO_SCENE)  # another `/scene end` came first
        if self.bot.chats.prefs.autoresponds(scene.channel_id):
            await self._say(
                ctx, "🎬 The scene has ended. Auto-respond is on: I answer every message."
            )
        else:
            await self._say(ctx, "🎬 The scene has ended. I answer here only when asked again.")

    @scene.group(name="state", fallback="show", case_insensitive=True)
    async def state(self, ctx: Context) -> None:
        """What the story has established about each character, place and item."""
        await ctx.defer()  # the scene is read from the database
        scene = await self._scene(ctx)
        shown = render(scene.state) or "Nothing established yet: it fills in as you play."
        embed = discord.Embed(
            title=f"Scene state (turn {scene.turns})", description=truncate(shown, 4000)
        )
        if not held_by_slowmode(ctx):
            await send_embeds(ctx, [embed])
            return
        for chunk in split_message(embed_text(embed), TEXT_LIMIT):  # as `_say` says things
            await self._say(ctx, chunk)

    @state.command(name="set")
    @app_commands.describe(
        entity="The character, place or item",
        fact="What to correct",
        value=f"The corrected fact (`{CLEAR}` removes it)",
        kind="Whether it is a character, a place or an item (new ones: a character)",
    )
    async def state_set(
        self, ctx: Context, entity: str, fact: Fact, *, value: str, kind: Kind | None = None
    ) -> None:
        """Correct one fact of the scene's state (its owner, or Manage Messages)."""
        scene = await self._changeable(ctx)
        if not name_key(entity):  # "" or only spaces and invisible characters
            raise RoleplayError("Name the character, place or item whose fact you correct.")
        if not name_key(value):  # would note nothing, yet say "Noted"
            raise RoleplayError(f"Give the {fact}, or `{CLEAR}` to remove it.")
        if len(value) > MAX_FACT or len(entity) > MAX_NAME:
            raise RoleplayError(
                f"Keep the name to {MAX_NAME} and the fact to {MAX_FACT} characters at most."
            )
        if value.strip() == CLEAR and not noted(scene.state, entity, fact):
            raise RoleplayError(f"**{_md(entity)}** has no {fact} noted: nothing to remove.")
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        if not await self.scenes.change_state(
            scene.channel_id,
            scene.started_at,
            lambda state: set_fact(state, entity, fact, value, kind),
        ):
            raise RoleplayError(CHANGED)
        await self._say(ctx, f"Noted: **{_md(entity)}**, {fact}: {_md(value)}")

    @scene.command(name="world")
    @commands.has_guild_permissions(manage_guild=True)
    @app_commands.describe(text="The world, lore or setting of this server's scenes (empty: none)")
    async def world(self, ctx: Context, *, text: str | None = None) -> None:
        """Set this server's world for its scenes (Manage Server)."""
        assert ctx.guild is not None
        text = _given(text)  # a blank world is none, not an empty one
        if text is not None and len(text) > WORLD_CHARS:
            raise RoleplayError(f"Keep the world to {WORLD_CHARS:,} characters at most.")
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.scenes.set_world(ctx.guild.id, text)
        await self._say(
            ctx, "The server's world is set." if text else "The server's world is cleared."
        )

    @add.autocomplete("character")
    @remove.autocomplete("character")
    async def _name(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        names = await self.characters.names(interaction.guild_id, current)
        return [app_commands.Choice(name=n, value=n) for n in names]

    @start.autocomplete("characters")
    async def _names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Completes the last name of the list, which may hold commas of its own
        ("Bren, Seraphina, Fo": "Bren, Seraphina, Forest Guardian")."""
        if interaction.guild_id is None:
            return []
        listed = await self.characters.listing(interaction.guild_id)
        keyed = [(c.name, name_key(c.name)) for c in listed]
        most = max((key.count(",") for _, key in keyed), default=0)
        pieces, choices = current.split(","), []
        for at in range(max(0, len(pieces) - 1 - most), len(pieces)):  # longest last first
            done, typed = ",".join(pieces[:at]).strip(), name_key(",".join(pieces[at:]))
            head = f"{done}, " if done else ""
            choices += [f"{head}{n}" for n, k in keyed if typed in k and len(head + n) <= 100]
        return [app_commands.Choice(name=c, value=c) for c in list(dict.fromkeys(choices))[:25]]

    async def _say(self, ctx: Context, content: str) -> None:
        """Say what a command did, which is done: where slowmode holds the bot's own
        messages, through the channel's webhook as the bot (as a scene's narration); one
        Discord holds all the same (no webhook here) is logged, not reported as failed."""
        channel = ctx.channel
        try:
            if held_by_slowmode(ctx) and isinstance(channel, Channel):
                await self.sender.send_as_bot(channel, content)
            else:
                await ctx.send(content, allowed_mentions=NO_PINGS)
        except discord.RateLimited as error:
            log.warning("done, but Discord holds the word of it in %s: %s", channel.id, error)

    async def _character(self, ctx: Context, name: str) -> Character:
        assert ctx.guild is not None
        return await self.characters.named(ctx.guild.id, name)

    async def _scene(self, ctx: Context) -> Scene:
        assert ctx.guild is not None
        scene = await self.scenes.get(ctx.channel.id)
        if scene is None or scene.guild_id != ctx.guild.id:
            raise RoleplayError(NO_SCENE)
        return scene

    async def _changeable(self, ctx: Context) -> Scene:
        scene = await self._scene(ctx)
        author = ctx.author
        allowed = scene.owner_id == author.id or (
            isinstance(author, discord.Member)
            and ctx.channel.permissions_for(author).manage_messages
        )
        if not allowed:
            raise RoleplayError(
                "Only the one who started this scene or someone with Manage Messages can."
            )
        return scene


def _channel(ctx: Context) -> Channel:
    channel = ctx.channel
    if not isinstance(channel, discord.TextChannel | discord.VoiceChannel | discord.Thread):
        raise RoleplayError("Scenes play in text channels and threads.")
    return channel


def _given(text: str | None) -> str | None:
    """``text`` trimmed; None (not given) when it shows nothing: "", only spaces (of any
    script) or invisible characters such as zero-width spaces."""
    return text.strip() if text and name_key(text) else None


def _names(cast: list[Character]) -> str:
    names = [f"**{_md(c.name)}**" for c in cast]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _md(text: str) -> str:
    return discord.utils.escape_markdown(text)
