"""Roleplay scenes where a correction meets a state update, names hold a `|`, places are
corrected, the bot may not attach files, and the server's webhook limit is met. The real
bot against the fake Discord and the fake Gemini."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import discord
import pytest

from cogs.roleplay.scenes import SceneStore
from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.e2e.test_roleplay_characters import card_png, upload
from tests.e2e.test_roleplay_scenes import KEY_STATE, MANAGE_WEBHOOKS, World, scenes
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_request import GeminiRequest
from tests.fakes.gemini_server import FakeGemini

ATTACH_FILES = discord.Permissions(attach_files=True).value


@pytest.fixture
def scene_world(
    discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild, member: FakeUser
) -> World:
    return World(discord_fake, gemini_fake, guild, member)


async def test_a_correction_made_while_the_state_is_updated_loses_neither(
    scene_world: World,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Both read the state before either wrote it: the later write dropped the other's."""
    world = scene_world
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    world.state_reply = KEY_STATE
    answer = gemini_fake.default
    assert answer is not None

    def answer_then_wait(request: GeminiRequest) -> str:
        if "responseSchema" not in request.json.get("generationConfig", {}):
            gemini_fake.hang(2.0)  # the state update after this turn
        return answer(request)

    gemini_fake.default = answer_then_wait
    await world.play("hello")
    store = scenes(bot).scenes
    await eventually(lambda: _turns(store, guild), equals=1)

    # The database's writer is held so that both read before either writes.
    lock = bot.db._write_lock  # type: ignore[attr-defined]
    holding = [asyncio.Event(), asyncio.Event()]
    releases = [asyncio.Event(), asyncio.Event()]

    async def hold(index: int) -> None:
        async with bot.db.transaction():
            holding[index].set()
            await releases[index].wait()

    def waiting() -> int:
        return len(lock._waiters or ())

    holders = [asyncio.create_task(hold(0))]
    await holding[0].wait()
    await eventually(lambda: waiting() == 1)  # the update, with its usage record
    holders.append(asyncio.create_task(hold(1)))
    await eventually(lambda: waiting() == 2)
    releases[0].set()
    await holding[1].wait()
    await eventually(lambda: waiting() == 1)  # the update, with its state
    correction = asyncio.create_task(
        world.slash(member, ["state", "set"], entity="Aria", fact="location", value="the inn")
    )
    await eventually(lambda: waiting() == 2)
    releases[1].set()
    assert "Noted" in (await correction).content
    await asyncio.gather(*holders)
    await eventually(lambda: not scenes(bot).director._updating)

    scene = await store.get(guild.text.id)
    assert scene is not None
    assert scene.state["aria"]["location"] == "the inn"
    assert scene.state["bren"]["possessions"] == "the iron key"


async def _turns(store: SceneStore, guild: FakeGuild) -> int:
    scene = await store.get(guild.text.id)
    return scene.turns if scene else -1


async def test_a_typed_scene_start_takes_a_name_with_a_bar_whole(
    scene_world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = scene_world
    bot = await start_bot(ai_settings())
    await world.character("Aria|Moon")
    await world.character("Bren")
    await discord_fake.send_message(
        guild.text, member, "!scene start aria|moon, Bren | A port | a storm."
    )
    started = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "scene begins" in m.content
    )
    assert "A scene begins with **Aria\\|Moon** and **Bren**" in started.content
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and len(scene.characters) == 2
    assert scene.world == "A port | a storm."

    await world.slash(member, "end")
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "!scene start Aria|Moon")  # no world
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: "scene begins" in m.content
    )
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and len(scene.characters) == 1 and scene.world is None

    await world.slash(member, "end")
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "!scene start Arya | A port")
    refused = await discord_fake.wait_for_message(guild.text, after=before)
    assert "no character called **Arya**" in refused.content


async def test_a_place_or_an_item_is_corrected_as_such(
    scene_world: World,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = scene_world
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    await world.slash(
        member,
        ["state", "set"],
        entity="The Rusty Anchor",
        fact="location",
        value="the harbour",
        kind="place",
    )
    await world.slash(member, ["state", "set"], entity="Aria", fact="goals", value="find the key")

    shown = await world.slash(member, ["state", "show"])
    description = shown.embeds[0]["description"]
    assert "- The Rusty Anchor (place): location: the harbour" in description
    assert "- Aria (character): goals: find the key" in description
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and scene.state["the rusty anchor"]["kind"] == "place"


async def test_without_attach_files_the_avatar_is_not_uploaded_on_every_turn(
    scene_world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = scene_world
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    for made in discord_fake.messages_in(guild.text):  # the avatars' homes are gone
        made.deleted = True
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=ATTACH_FILES, member=True)
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    await eventually(lambda: not channel.permissions_for(channel.guild.me).attach_files)
    store = scenes(bot).characters
    for name in ("Aria", "Bren"):  # and their links expired
        character = await store.get(guild.id, name)
        assert character is not None and character.link is not None
        await store.set_link(character, replace(character.link, url=character.link.url + "?ex=1"))
    await world.slash(member, "start", characters="Aria, Bren")
    await world.play("one")
    await world.play("two")

    uploads = [
        r
        for r in discord_fake.requests
        if r.method == "POST"
        and r.path == f"/channels/{guild.text.id}/messages"
        and str((r.json or {}).get("content", "")).startswith("Avatar of")
    ]
    assert uploads == []
    said = [m for m in discord_fake.messages_in(guild.text) if m.webhook_id]
    assert {m.author.name for m in said} == {"Aria", "Bren"}


async def test_a_webhook_deleted_elsewhere_in_a_full_server_gives_characters_their_names(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """At the server's limit the notice asks to delete any webhook of the server."""
    discord_fake.webhook_routes.guild_limit = 3
    elsewhere = guild.add_text_channel("elsewhere")
    others = [discord_fake.webhook_routes.add(elsewhere, f"hook {i}", member) for i in range(3)]
    bot = await start_bot(extensions=["cogs.roleplay"])
    sender = scenes(bot).sender
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)

    await sender.send(channel, "Hello", name="Alice", avatar_url=None)
    notice, fallback = discord_fake.messages_in(guild.text)
    assert "server settings" in notice.content and fallback.content == "**Alice**: Hello"

    changed = asyncio.create_task(bot.wait_for("webhooks_update"))
    discord_fake.webhook_routes.delete(others[0])
    assert (await changed).id == elsewhere.id
    spoken = await sender.send(channel, "Thanks", name="Alice", avatar_url=None)

    message = discord_fake.messages[spoken.id]
    assert (message.author.name, message.content) == ("Alice", "Thanks")
    assert message.webhook_id is not None
    assert len(discord_fake.messages_in(guild.text)) == 3  # no second notice


async def test_a_typed_import_where_the_bot_may_not_attach_files_is_confirmed(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The character was made, but its confirmation (the avatar attached) was refused:
    "I'm missing a permission", and trying again said the name was taken."""
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=ATTACH_FILES, member=True)
    bot = await start_bot(ai_settings())
    card = card_png({"name": "Aria", "description": "Aria of the valley."})
    await discord_fake.send_message(
        guild.text, discord_fake.owner, "!character import", attachments=[upload("a.png", card)]
    )
    said = await discord_fake.wait_for_message(guild.text)
    assert said.content == "Imported **Aria**." and said.embeds and not said.attachments

    await discord_fake.send_message(guild.text, discord_fake.owner, "!character show Aria")
    shown = await discord_fake.wait_for_message(guild.text, after=1)
    assert shown.embeds[0]["title"] == "Aria" and not shown.attachments
    character = await scenes(bot).characters.get(guild.id, "Aria")
    assert character is not None and character.avatar is not None and character.link is None
