"""The `/character` commands: each server's roleplay characters and their cards.

Anyone may list, show and export characters. Creating and importing take Manage
Messages: characters are server content that the AI will speak as, names are
shared and the per-server limit is shared, so moderators curate them. Editing and
deleting take Manage Messages, or being the character's creator.

Typed, `show`, `export` and `delete` take the rest of the line as the name, so a name
of several words needs no quotes: `!character delete Aria Moon` is Aria Moon, not Aria
(`"Aria Moon"` in quotes is found too). Where slowmode holds the bot's own messages and
it may manage webhooks, a typed command is answered through the channel's webhook as
the bot (slowmode spares webhooks), a card as text, as a scene's narration is.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from cogs.ai.replies import ATTACHMENT_TIMEOUT
from cogs.music.urls import AddressPolicy
from cogs.roleplay.avatar_links import AVATAR_FILE, AvatarLinks, avatar_file, may_attach
from cogs.roleplay.avatars import MAX_DOWNLOAD, AvatarFetcher, to_avatar
from cogs.roleplay.cards import MAX_CARD_BYTES, read_card, write_json_card, write_png_card
from cogs.roleplay.characters import Character, CharacterStore, Profile
from cogs.roleplay.errors import RoleplayError
from cogs.roleplay.webhook_names import TEXT_LIMIT
from cogs.roleplay.webhooks import NO_PINGS, Channel, WebhookSender, may_make_webhooks
from utils.checks import needs_guild
from utils.commands import list_subcommands
from utils.embeds import embed_text, send_embeds
from utils.slowmode import held_by_slowmode
from utils.text import split_message, truncate

if TYPE_CHECKING:
    from bot import Bot

Context = commands.Context["Bot"]

LIST_PAGE = 20
"""Characters on a page of `/character list` (20 of the longest lines fit an embed)."""

_TEXT_OPTIONS = {
    "description": "Who the character is: looks, background, personality",
    "personality": "A short summary of the personality",
    "first_message": "What the character says to open a scene",
    "example_dialogue": "Example lines that show how the character talks",
}
_AVATAR_OPTIONS = {
    "avatar": "An image for the avatar (PNG, JPEG, GIF, WebP)",
    "avatar_url": "An https link to the avatar image instead",
}


class Roleplay(commands.Cog):
    """Roleplay characters: create them, or import SillyTavern cards."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        settings = bot.settings
        self.characters = CharacterStore(bot.db, limit=settings.rp_max_characters)
        self.links = AvatarLinks(bot, self.characters)
        self.sender = WebhookSender(bot)  # the scenes' too
        self.fetcher = AvatarFetcher(
            AddressPolicy(
                allow_private=settings.music_allow_private_urls,
                allowed_hosts=frozenset(settings.music_allowed_hosts),
            )
        )

    async def cog_load(self) -> None:
        await self.fetcher.start()
        self.bot.data_owners.register("roleplay", self.characters)

    async def cog_unload(self) -> None:
        self.bot.data_owners.unregister("roleplay")
        await self.fetcher.close()

    def cog_check(self, ctx: Context) -> bool:
        return needs_guild(ctx)

    @commands.hybrid_group(name="character", case_insensitive=True)
    @commands.guild_only()
    async def character(self, ctx: Context) -> None:
        """This server's roleplay characters."""
        if ctx.invoked_subcommand is None:
            await list_subcommands(ctx, self.character)

    @character.command(name="create")
    @commands.has_guild_permissions(manage_messages=True)
    @app_commands.describe(name="The character's name", **_TEXT_OPTIONS, **_AVATAR_OPTIONS)
    async def create(
        self,
        ctx: Context,
        name: str,
        description: str,
        personality: str = "",
        first_message: str = "",
        example_dialogue: str = "",
        avatar: discord.Attachment | None = None,
        avatar_url: str | None = None,
    ) -> None:
        """Create a character (Manage Messages)."""
        assert ctx.guild is not None
        await ctx.defer()
        image = await self._avatar(avatar, avatar_url)
        profile = Profile(name, description, personality, "", first_message, example_dialogue)
        made = await self.characters.create(ctx.guild.id, ctx.author.id, profile, image)
        await self._announce(ctx, made, f"Created **{_md(made.name)}**.")

    @character.command(name="import")
    @commands.has_guild_permissions(manage_messages=True)
    @app_commands.describe(card="A SillyTavern character card: the PNG, or its JSON file")
    async def import_(self, ctx: Context, card: discord.Attachment) -> None:
        """Import a SillyTavern character card (V1, V2 or V3; Manage Messages)."""
        assert ctx.guild is not None
        await ctx.defer()
        data = await _read(card, MAX_CARD_BYTES)
        profile, image = await asyncio.to_thread(_read_card, data)
        made = await self.characters.create(ctx.guild.id, ctx.author.id, profile, image)
        await self._announce(ctx, made, f"Imported **{_md(made.name)}**.")

    @character.command(name="edit")
    @app_commands.describe(
        name="The character to change",
        new_name="A new name",
        **_TEXT_OPTIONS,
        scenario="The situation the character is in",
        **_AVATAR_OPTIONS,
    )
    async def edit(
        self,
        ctx: Context,
        name: str,
        new_name: str | None = None,
        description: str | None = None,
        personality: str | None = None,
        first_message: str | None = None,
        example_dialogue: str | None = None,
        scenario: str | None = None,
        avatar: discord.Attachment | None = None,
        avatar_url: str | None = None,
    ) -> None:
        """Change a character: the fields you give (its creator, or Manage Messages)."""
        character = await self._changeable(ctx, name)
        await ctx.defer()
        image = await self._avatar(avatar, avatar_url)
        changes = {
            "name": new_name,
            "description": description,
            "personality": personality,
            "first_message": first_message,
            "example_dialogue": example_dialogue,
            "scenario": scenario,
        }
        profile = replace(character.profile, **{k: v for k, v in changes.items() if v is not None})
        if profile == character.profile and image is None:
            raise RoleplayError("Give at least one thing to change.")
        edited = await self.characters.update(character, profile, image or character.avatar)
        if image is None:
            await self._say(ctx, f"Updated **{_md(edited.name)}**.")
        else:
            await self._announce(ctx, edited, f"Updated **{_md(edited.name)}**.")

    @character.command(name="delete")
    @app_commands.describe(name="The character to delete")
    async def delete(self, ctx: Context, *, name: str) -> None:
        """Delete a character (its creator, or Manage Messages)."""
        character = await self._changeable(ctx, name)
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        if not await self.characters.delete(character):  # another deletion came first
            raise RoleplayError(f"**{_md(character.name)}** was deleted meanwhile.")
        self.bot.dispatch("character_deleted", character)  # it leaves its scenes
        await self._say(ctx, f"Deleted **{_md(character.name)}**.")

    @character.command(name="list")
    @app_commands.describe(page="Which page of the list")
    async def list_(self, ctx: Context, page: int = 1) -> None:
        """List this server's characters, a page at a time."""
        assert ctx.guild is not None
        await ctx.defer()  # the characters are read from the database
        listed = await self.characters.listing(ctx.guild.id)
        if not listed:
            await self._say(
                ctx, "This server has no characters yet: `/character create` or `import`."
            )
            return
        pages = -(-len(listed) // LIST_PAGE)
        page = min(max(1, page), pages)
        shown = listed[(page - 1) * LIST_PAGE : page * LIST_PAGE]
        embed = discord.Embed(
            title=f"Characters ({len(listed)}/{self.characters.limit})",
            description="\n".join(f"**{_md(c.name)}** by <@{c.creator_id}>" for c in shown),
        )
        if pages > 1:
            more = f" · /character list page:{page + 1} shows the next" if page < pages else ""
            embed.set_footer(text=f"Page {page}/{pages}{more}")
        if _spared(ctx) is None:
            await send_embeds(ctx, [embed])
            return
        for chunk in split_message(embed_text(embed), TEXT_LIMIT):
            await self._say(ctx, chunk)

    @character.command(name="show")
    @app_commands.describe(name="The character to show")
    async def show(self, ctx: Context, *, name: str) -> None:
        """Show a character's profile and avatar."""
        await ctx.defer()  # the character is read from the database
        character = await self._get(ctx, name)
        await self._send_card(ctx, character)

    @character.command(name="export")
    @app_commands.describe(name="The character to export")
    async def export(self, ctx: Context, *, name: str) -> None:
        """Download a character as a SillyTavern card (PNG with its avatar, else JSON)."""
        character = await self._get(ctx, name)
        if ctx.interaction is None and not may_attach(ctx.channel):  # else Discord refuses
            raise RoleplayError(
                "I need the **Attach Files** permission here to send the card of "
                f"**{_md(character.name)}**."
            )
        await ctx.defer()
        stem = "".join(c for c in character.name if c.isalnum() or c in " -_").strip() or "card"
        if character.avatar is None:
            data, filename = write_json_card(character.profile), f"{stem}.json"
        else:
            card = await asyncio.to_thread(write_png_card, character.profile, character.avatar)
            data, filename = card, f"{stem}.png"
        file = discord.File(io.BytesIO(data), filename=filename)
        await self._say(ctx, f"The card of **{_md(character.name)}**.", file)

    @edit.autocomplete("name")
    @delete.autocomplete("name")
    @show.autocomplete("name")
    @export.autocomplete("name")
    async def _names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        names = await self.characters.names(interaction.guild_id, current)
        return [app_commands.Choice(name=n, value=n) for n in names]

    async def _get(self, ctx: Context, name: str) -> Character:
        assert ctx.guild is not None
        return await self.characters.named(ctx.guild.id, name)

    async def _changeable(self, ctx: Context, name: str) -> Character:
        character = await self._get(ctx, name)
        author = ctx.author
        allowed = character.creator_id == author.id or (
            isinstance(author, discord.Member) and author.guild_permissions.manage_messages
        )
        if not allowed:
            raise RoleplayError(
                f"Only the creator of **{_md(character.name)}** or someone with "
                "Manage Messages can change it."
            )
        return character

    async def _avatar(self, attachment: discord.Attachment | None, url: str | None) -> bytes | None:
        """The avatar from an attachment or a link, as a small PNG; None if neither."""
        if attachment is not None and url:
            raise RoleplayError("Give an avatar image or a link, not both.")
        if attachment is not None:
            return await asyncio.to_thread(to_avatar, await _read(attachment, MAX_DOWNLOAD))
        if url:
            return await self.fetcher.fetch(url.strip())
        return None

    async def _announce(self, ctx: Context, character: Character, text: str) -> None:
        """Confirm with the character's card; its avatar attachment becomes the avatar's URL."""
        message = await self._send_card(ctx, character, text)
        if character.avatar is not None:
            await self.links.remember(character, message)

    async def _send_card(
        self, ctx: Context, character: Character, text: str = ""
    ) -> discord.Message:
        """``text`` and the character's card, the avatar attached if the bot may attach files
        here; the card as text where it may not embed (a typed command without Embed Links:
        Discord would drop the card, and refuse a message left empty) or where slowmode
        holds the bot's messages (`_say`)."""
        sent = _card_message(character, attach=may_attach(ctx.channel))
        embeds = ctx.interaction is not None or ctx.bot_permissions.embed_links
        if embeds and _spared(ctx) is None:
            return await ctx.send(text or None, **sent)
        card = embed_text(sent["embed"])
        first, *rest = split_message(f"{text}\n{card}" if text else card, TEXT_LIMIT)
        message = await self._say(ctx, first, sent.get("file"))  # the avatar with the first
        for chunk in rest:
            await self._say(ctx, chunk)
        return message

    async def _say(
        self, ctx: Context, content: str, file: discord.File | None = None
    ) -> discord.Message:
        """Answer with ``content``, through the channel's webhook as the bot where slowmode
        would hold the bot's own message (`_spared`): else the answer would wait out the
        slowmode, or be lost, while the command's work is done."""
        if (channel := _spared(ctx)) is not None:
            spoken = await self.sender.send_as_bot(channel, content, file=file)
            assert spoken.message is not None
            return spoken.message
        return await ctx.send(
            content, file=file or discord.utils.MISSING, allowed_mentions=NO_PINGS
        )


def _card_message(character: Character, *, attach: bool) -> dict:
    """``ctx.send`` arguments showing a character: an embed, the avatar attached if the
    bot may attach files there (else its avatar shows where it speaks)."""
    profile = character.profile
    embed = discord.Embed(title=profile.name, description=truncate(profile.description, 1500))
    for label, text in (
        ("Personality", profile.personality),
        ("Scenario", profile.scenario),
        ("First message", profile.first_message),
        ("Example dialogue", profile.example_dialogue),
        ("Creator's notes", profile.creator_notes),
    ):
        if text.strip():
            embed.add_field(name=label, value=truncate(text, 500), inline=False)
    embed.add_field(name="Created by", value=f"<@{character.creator_id}>")
    sent: dict = {"embed": embed, "allowed_mentions": discord.AllowedMentions.none()}
    if character.avatar is not None and attach:
        embed.set_thumbnail(url=f"attachment://{AVATAR_FILE}")
        sent["file"] = avatar_file(character)
    return sent


def _spared(ctx: Context) -> Channel | None:
    """The channel whose webhook answers for the bot, as text (`Roleplay._say`): where
    slowmode holds the bot's own messages and the bot may have a webhook; else None."""
    channel = ctx.channel
    if held_by_slowmode(ctx) and isinstance(channel, Channel) and may_make_webhooks(channel):
        return channel
    return None


def _read_card(data: bytes) -> tuple[Profile, bytes | None]:
    """A card's profile and avatar; CPU work, run in a thread. Nothing is stored yet."""
    card = read_card(data)
    return card.profile, to_avatar(card.image) if card.image is not None else None


async def _read(attachment: discord.Attachment, limit: int) -> bytes:
    if attachment.size > limit:
        raise RoleplayError(f"That file is over {limit // (1024 * 1024)} MB.")
    try:
        data = await asyncio.wait_for(attachment.read(), ATTACHMENT_TIMEOUT)
    except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as error:
        raise RoleplayError("I couldn't download that file from Discord.") from error
    if len(data) > limit:
        raise RoleplayError(f"That file is over {limit // (1024 * 1024)} MB.")
    return data


def _md(text: str) -> str:
    return discord.utils.escape_markdown(text)
