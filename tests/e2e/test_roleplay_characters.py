"""Roleplay characters end to end: the real bot, `/character` through the fake Discord.

Cards and avatars are uploaded as slash-command attachments; what the bot answers,
attaches and stores is checked as users and the scene code would see it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import sys
from dataclasses import asdict
from typing import Any, cast

import aiohttp
import discord
import pytest
from PIL import Image, PngImagePlugin

from bot import Bot
from cogs.roleplay.cards import png_texts, read_card
from cogs.roleplay.characters import AvatarLink, Character, Profile
from cogs.roleplay.cog import Roleplay
from tests.conftest import BASIC, StartBot, eventually
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser

MANAGE_MESSAGES = 0x2000


def picture(size: tuple[int, int] = (512, 768), text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def card_png(data: dict[str, Any]) -> bytes:
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}
    return picture(text={"chara": base64.b64encode(json.dumps(card).encode()).decode()})


def broken_picture(png: bytes) -> bytes:
    """The card with its picture data garbled (its chunks still readable)."""
    at = png.index(b"IDAT") + 6
    return png[:at] + b"\xff" * 8 + png[at + 8 :]


def upload(name: str, data: bytes, kind: str = "image/png") -> dict[str, Any]:
    return {"filename": name, "data": data, "content_type": kind}


class Slash:
    def __init__(self, fake: FakeDiscord, guild: FakeGuild) -> None:
        self.fake, self.guild = fake, guild

    async def __call__(self, user: FakeUser, sub: str, **options: Any) -> FakeMessage:
        """Run ``/character sub`` and return the bot's finished answer."""
        interaction = await self.fake.invoke_slash(
            self.guild.text, user, "character", options or None, subcommand=sub
        )
        await interaction.wait_response()

        def answered() -> FakeMessage | None:
            message = interaction.original
            return message if message is not None and not message.loading else None

        message = await self.fake.wait_for(answered, 10)
        assert message is not None
        return message


@pytest.fixture
async def bot(start_bot: StartBot, make_settings: Any) -> Bot:
    return await start_bot(make_settings(memory_enabled=False, rp_max_characters=3))


@pytest.fixture
def slash(discord_fake: FakeDiscord, guild: FakeGuild) -> Slash:
    return Slash(discord_fake, guild)


def roleplay(bot: Bot) -> Roleplay:
    return cast(Roleplay, bot.get_cog("Roleplay"))


async def test_create_show_list_and_who_may_change_what(
    bot: Bot, slash: Slash, discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser
) -> None:
    owner = discord_fake.owner
    mod = discord_fake.add_user("mod")
    guild.add_member(mod, permissions=BASIC)
    mods = guild.add_role("Mods", MANAGE_MESSAGES)
    guild.give_role(mod, mods)

    refused = await slash(member, "create", name="Sera", description="x")
    assert "Manage Messages" in refused.content
    made = await slash(
        mod,
        "create",
        name="Seraphina",
        description="A forest guardian.",
        first_message="You're awake!",
        avatar=upload("me.png", picture()),
    )
    assert "Created **Seraphina**" in made.content
    assert made.embeds[0]["thumbnail"]["url"] == "attachment://avatar.png"
    with Image.open(io.BytesIO(made.attachments[0].data)) as avatar:
        assert avatar.size == (171, 256)  # shrunk to 256 a side, aspect kept
    taken = await slash(owner, "create", name="SERAPHINA", description="again")
    assert "already has a character called" in taken.content

    shown = await slash(member, "show", name="seraphina")
    assert shown.embeds[0]["title"] == "Seraphina"
    assert shown.embeds[0]["description"] == "A forest guardian."
    assert shown.attachments[0].data == made.attachments[0].data
    listed = await slash(member, "list")
    assert "**Seraphina** by <@" in listed.embeds[0]["description"]
    assert listed.embeds[0]["title"] == "Characters (1/3)"

    denied = await slash(member, "edit", name="Seraphina", description="hacked")
    assert "Only the creator" in denied.content
    assert "Only the creator" in (await slash(member, "delete", name="Seraphina")).content

    guild.take_role(mod, mods)  # the creator may still change their own
    edited = await slash(mod, "edit", name="Seraphina", new_name="Sera", personality="calm")
    assert "Updated **Sera**" in edited.content
    character = await roleplay(bot).characters.get(guild.id, "sera")
    assert character is not None and character.profile.personality == "calm"
    assert character.avatar == made.attachments[0].data  # kept
    assert "Deleted **Sera**" in (await slash(owner, "delete", name="Sera")).content
    assert "no characters yet" in (await slash(member, "list")).content


async def test_card_import_export_round_trip(
    bot: Bot, slash: Slash, discord_fake: FakeDiscord, guild: FakeGuild
) -> None:
    owner = discord_fake.owner
    data = {
        "name": "Aria",
        "description": "A bard.",
        "personality": "cheerful",
        "scenario": "A tavern.",
        "first_mes": "*Strums.* Hello!",
        "mes_example": "<START>\n{{char}}: La la.",
        "creator_notes": "Sings a lot.",
    }
    imported = await slash(owner, "import", card=upload("aria.png", card_png(data)))
    assert "Imported **Aria**" in imported.content
    exported = await slash(owner, "export", name="aria")
    card = exported.attachments[0]
    assert card.filename == "Aria.png"
    assert set(png_texts(card.data, {"chara", "ccv3"})) == {"chara", "ccv3"}
    original = read_card(card_png(data)).profile
    assert read_card(card.data).profile == original

    await slash(owner, "delete", name="Aria")
    again = await slash(owner, "import", card=upload("Aria.png", card.data))
    assert "Imported **Aria**" in again.content
    stored = await roleplay(bot).characters.get(guild.id, "Aria")
    assert stored is not None
    # asdict: the bot's extension modules are fresh imports, their classes other objects
    assert asdict(stored.profile) == asdict(original)

    plain = {"name": "Nox", "description": "No picture."}
    await slash(
        owner, "import", card=upload("nox.json", json.dumps(plain).encode(), "application/json")
    )
    as_json = (await slash(owner, "export", name="Nox")).attachments[0]
    assert as_json.filename == "Nox.json"
    assert json.loads(as_json.data)["data"]["description"] == "No picture."


@pytest.mark.parametrize(
    ("file", "message"),
    [
        (upload("x.png", picture()), "no character card in it"),
        (upload("x.txt", b"hello", "text/plain"), "not a character card"),
        (upload("x.png", card_png({"description": "nameless"})), "no character name"),
        (upload("x.png", picture(text={"chara": "%%%"})), "damaged"),
        (upload("x.png", broken_picture(card_png({"name": "Bo"}))), "image is damaged"),
        (
            upload("x.json", b'{"x": ' + b"[" * 10**5 + b"]" * 10**5 + b"}", "text/plain"),
            "not valid",
        ),
        (upload("x.json", b'{"spec": ["chara_card_v2"]}', "text/plain"), "Unsupported card"),
    ],
)
async def test_broken_cards_are_refused_and_nothing_is_stored(
    bot: Bot,
    slash: Slash,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    file: dict[str, Any],
    message: str,
) -> None:
    answer = await slash(discord_fake.owner, "import", card=file)
    assert message in answer.content and "\n" not in answer.content
    assert await roleplay(bot).characters.listing(guild.id) == []


async def test_a_download_from_discord_that_stalls_is_given_up(
    bot: Bot,
    slash: Slash,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stalled(self: discord.Attachment, **kwargs: Any) -> bytes:
        await asyncio.sleep(3600)
        return b""

    monkeypatch.setattr(discord.Attachment, "read", stalled)
    # the bot's own module: its extensions are fresh imports
    monkeypatch.setattr(sys.modules[type(roleplay(bot)).__module__], "ATTACHMENT_TIMEOUT", 0.1)
    answer = await slash(
        discord_fake.owner, "import", card=upload("a.png", card_png({"name": "A"}))
    )
    assert answer.content == "I couldn't download that file from Discord."
    assert await roleplay(bot).characters.listing(guild.id) == []


async def test_oversized_card_picture_and_the_server_limit(
    bot: Bot, slash: Slash, discord_fake: FakeDiscord, guild: FakeGuild
) -> None:
    owner = discord_fake.owner
    huge = card_png({"name": "Huge"})
    big = Image.new("1", (6000, 5000))
    out = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("chara", png_texts(huge, {"chara"})["chara"])
    big.save(out, format="PNG", pnginfo=info)
    refused = await slash(owner, "import", card=upload("huge.png", out.getvalue()))
    assert "too large" in refused.content
    assert await roleplay(bot).characters.listing(guild.id) == []

    for name in ("A", "B", "C"):
        await slash(owner, "create", name=name, description="x")
    full = await slash(owner, "import", card=upload("d.png", card_png({"name": "D"})))
    assert "its limit" in full.content


async def test_avatar_url_is_the_confirmation_attachment_and_is_renewed(
    bot: Bot, slash: Slash, discord_fake: FakeDiscord, guild: FakeGuild
) -> None:
    cog = roleplay(bot)
    made = await slash(
        discord_fake.owner,
        "create",
        name="Sera",
        description="x",
        avatar=upload("a.png", picture()),
    )
    channel = cast(discord.TextChannel, bot.get_channel(guild.text.id))

    async def linked() -> Character | None:  # remembered right after the answer is sent
        character = await cog.characters.get(guild.id, "Sera")
        return character if character is not None and character.link is not None else None

    character = await eventually(linked)
    assert await cog.links.avatar_url(character, channel) == made.attachments[0].url
    assert discord_fake.messages_in(guild.text)[-1] is made  # nothing uploaded

    # Expired: asking Discord for the message again gives its (fresh) URL.
    await cog.characters.set_link(
        character, AvatarLink(guild.text.id, made.id, made.attachments[0].url + "?ex=1")
    )

    character = await eventually(linked)
    assert await cog.links.avatar_url(character, channel) == made.attachments[0].url
    assert discord_fake.messages_in(guild.text)[-1] is made  # nothing uploaded

    # Expired and the message gone: the avatar is uploaded again, once.
    made.deleted = True
    await cog.characters.set_link(
        character, AvatarLink(guild.text.id, made.id, made.attachments[0].url + "?ex=1")
    )
    character = await cog.characters.get(guild.id, "Sera")
    assert character is not None
    url = await cog.links.avatar_url(character, channel)
    reposted = discord_fake.messages_in(guild.text)[-1]
    assert reposted.content == "Avatar of **Sera**" and url == reposted.attachments[0].url
    assert reposted.attachments[0].data == made.attachments[0].data
    character = await cog.characters.get(guild.id, "Sera")
    assert character is not None and character.link is not None
    assert character.link.message_id == reposted.id

    # Discord asking for a longer wait than the bot waits (RateLimited, no HTTPException)
    # to renew or upload: no URL for now, no error.
    await cog.characters.set_link(character, AvatarLink(guild.text.id, reposted.id, "x?ex=1"))
    character = await cog.characters.get(guild.id, "Sera")
    assert character is not None
    renewal = ("GET", f"/channels/{guild.text.id}/messages/{reposted.id}")
    discord_fake.rate_limited[renewal] = 600
    assert await cog.links.avatar_url(character, channel) is None
    del discord_fake.rate_limited[renewal]
    reposted.deleted = True
    discord_fake.rate_limited[("POST", f"/channels/{guild.text.id}/messages")] = 600
    assert await cog.links.avatar_url(character, channel) is None


async def test_characters_stay_in_their_server_and_go_with_it(
    bot: Bot, slash: Slash, discord_fake: FakeDiscord, guild: FakeGuild
) -> None:
    await slash(discord_fake.owner, "create", name="Sera", description="x")
    other = discord_fake.add_guild("Other", owner=discord_fake.owner)
    assert await roleplay(bot).characters.get(other.id, "Sera") is None
    assert (await bot.data_owners.delete_guild(guild.id))["roleplay"] == 1
    assert "no characters yet" in (await slash(discord_fake.owner, "list")).content


async def test_a_download_from_discord_cut_off_is_refused_clearly(
    bot: Bot,
    slash: Slash,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def reset(self: discord.Attachment, **kwargs: Any) -> bytes:
        raise aiohttp.ClientPayloadError("Response payload is not completed")

    monkeypatch.setattr(discord.Attachment, "read", reset)
    answer = await slash(
        discord_fake.owner, "import", card=upload("a.png", card_png({"name": "A"}))
    )
    assert answer.content == "I couldn't download that file from Discord."
    assert await roleplay(bot).characters.listing(guild.id) == []


async def test_the_list_shows_every_character_a_page_of_whole_lines_at_a_time(
    start_bot: StartBot, make_settings: Any, discord_fake: FakeDiscord, guild: FakeGuild
) -> None:
    bot = await start_bot(make_settings(memory_enabled=False, rp_max_characters=50))
    owner, store = discord_fake.owner, roleplay(bot).characters
    names = [f"Character {i:02} " + "_" * 50 for i in range(45)]  # escaped: long lines
    for name in names:
        await store.create(guild.id, owner.id, Profile(name, "x"), None)
    slash, shown = Slash(discord_fake, guild), []
    for page in (1, 2, 3):
        embed = (await slash(owner, "list", page=page)).embeds[0]
        assert embed["title"] == "Characters (45/50)"
        lines = embed["description"].split("\n")
        assert all(re.fullmatch(rf"\*\*.+\*\* by <@{owner.id}>", line) for line in lines)
        shown += [line.removeprefix("**").split("**")[0] for line in lines]
        if page < 3:
            assert (
                embed["footer"]["text"]
                == f"Page {page}/3 · /character list page:{page + 1} shows the next"
            )
    assert embed["footer"]["text"] == "Page 3/3"
    assert shown == [discord.utils.escape_markdown(name) for name in names]
    last = (await slash(owner, "list", page=9)).embeds[0]  # past the end: the last page
    assert last["description"].endswith(f"{shown[-1]}** by <@{owner.id}>")


async def test_typed_commands_take_a_name_of_several_words_whole(
    bot: Bot, discord_fake: FakeDiscord, guild: FakeGuild
) -> None:
    owner, store = discord_fake.owner, roleplay(bot).characters
    for name in ("Aria", "Aria Moon"):
        await store.create(guild.id, owner.id, Profile(name, f"{name} herself."), None)

    await discord_fake.send_message(guild.text, owner, "!character show Aria Moon")
    shown = await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.embeds)
    assert shown.embeds[0]["title"] == "Aria Moon"
    await discord_fake.send_message(guild.text, owner, "!character delete Aria Moon")
    deleted = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith("Deleted")
    )
    assert deleted.content == "Deleted **Aria Moon**."
    assert [c.name for c in await store.listing(guild.id)] == ["Aria"]
