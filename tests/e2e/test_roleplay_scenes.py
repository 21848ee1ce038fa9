"""Roleplay scenes end to end: the real bot against the fake Discord and the fake Gemini.

Two SillyTavern cards are imported, a scene is started with `/scene start`, and the
fake Gemini writes each turn as a script ("Aria: ...\\nBren: ...\\nNarrator: ...") that
must come out through two webhook identities and the bot. Its answers to the state
update requests (structured output) are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import discord
import pytest

from bot import Bot
from cogs.roleplay.scene_cog import Scenes
from cogs.roleplay.scenes import Scene, SceneStore
from cogs.roleplay.webhook_names import TEXT_LIMIT
from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.e2e.test_roleplay_characters import Slash, card_png, upload
from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_request import GeminiRequest
from tests.fakes.gemini_server import FakeGemini

SEND_MESSAGES = 0x800
MANAGE_WEBHOOKS = 0x20000000
KEY_STATE = {"entities": [{"name": "Bren", "kind": "character", "possessions": "the iron key"}]}


class World:
    """The fakes, the bot and the steps of a scene."""

    def __init__(
        self, fake: FakeDiscord, gemini: FakeGemini, guild: FakeGuild, player: FakeUser
    ) -> None:
        self.fake, self.gemini, self.guild, self.player = fake, gemini, guild, player
        self.turns = 0
        self.state_reply: dict[str, Any] = {"entities": []}
        gemini.default = self._answer

    def _answer(self, request: GeminiRequest) -> str:
        if "responseSchema" in request.json.get("generationConfig", {}):
            return json.dumps(self.state_reply)  # the state update after a turn
        said = request.last_user_text.rsplit(": ", 1)[-1]
        return (
            f"Aria: Welcome, traveller ({said}).\nBren: I keep my secrets.\n"
            "Narrator: The fire crackles."
        )

    async def slash(
        self,
        user: FakeUser,
        sub: str | list[str],
        channel: FakeChannel | None = None,
        **options: Any,
    ) -> FakeMessage:
        interaction = await self.fake.invoke_slash(
            channel or self.guild.text, user, "scene", options or None, subcommand=sub
        )
        await interaction.wait_response()
        return await self.fake.wait_for(
            lambda: (
                interaction.original
                if interaction.original and not interaction.original.loading
                else None
            ),
            10,
        )

    async def character(self, name: str, first_message: str = "") -> None:
        data = {"name": name, "description": f"{name} of the valley.", "first_mes": first_message}
        interaction = await self.fake.invoke_slash(
            self.guild.text,
            self.fake.owner,
            "character",
            {"card": upload(f"{name}.png", card_png(data))},
            subcommand="import",
        )
        await interaction.wait_response()
        await self.fake.wait_for(
            lambda: interaction.original and not interaction.original.loading, 10
        )

    def streams(self) -> list[GeminiRequest]:
        return [r for r in self.gemini.requests if r.method == "streamGenerateContent"]

    async def play(self, text: str) -> list[FakeMessage]:
        """Say `text` in the scene; the turn's three final messages."""
        before = len(self.fake.messages_in(self.guild.text))
        await self.fake.send_message(self.guild.text, self.player, text)
        self.turns += 1

        def done() -> list[FakeMessage] | None:
            shown = self.fake.messages_in(self.guild.text)[before:]
            ends = [i for i, m in enumerate(shown) if m.content == "The fire crackles."]
            return shown[ends[0] - 2 : ends[0] + 1] if ends else None

        return await self.fake.wait_for(done, 10)


@pytest.fixture
def world(
    discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild, member: FakeUser
) -> World:
    return World(discord_fake, gemini_fake, guild, member)


def scenes(bot: Bot) -> Scenes:
    return cast(Scenes, bot.get_cog("Scenes"))


async def avatar_of(bot: Bot, guild: FakeGuild, name: str) -> str | None:
    """The URL of the avatar `/character import` attached (stored once it was sent)."""
    character = await scenes(bot).characters.get(guild.id, name)
    return character.link.url if character and character.link else None


async def test_a_scene_plays_fifty_turns_as_its_characters_across_a_restart(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings(ai_user_messages_per_minute=100, ai_channel_messages_per_minute=100)
    bot = await start_bot(settings)
    await world.character("Aria", "Hello {{user}}, I am {{char}}.")
    await world.character("Bren")
    avatars = {
        name: await eventually(lambda name=name: avatar_of(bot, guild, name))
        for name in ("Aria", "Bren")
    }
    assert avatars["Aria"] != avatars["Bren"]

    started = await world.slash(member, "start", characters="Aria, bren")
    assert "A scene begins with **Aria** and **Bren**" in started.content
    # The greeting follows the answer to the command, through the webhook.
    opening = await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.webhook_id)
    assert (opening.author.name, opening.avatar_url) == ("Aria", avatars["Aria"])
    assert opening.content == f"Hello {member.name}, I am Aria." and opening.webhook_id

    # A message without a mention is answered: each speaker as itself, narration as the bot.
    world.state_reply = KEY_STATE
    aria, bren, narration = await world.play("hello there")
    assert (aria.author.name, aria.avatar_url) == ("Aria", avatars["Aria"])
    assert aria.content == "Welcome, traveller (hello there)."
    assert (bren.author.name, bren.avatar_url, bren.content) == (
        "Bren",
        avatars["Bren"],
        "I keep my secrets.",
    )
    assert aria.webhook_id == bren.webhook_id and aria.webhook_id is not None
    assert narration.webhook_id is None and narration.author.id == discord_fake.bot_user.id
    assert len(aria.history) > 1  # streamed: edited in place, the same speaker throughout
    system = world.streams()[0].system_text
    assert "Aria of the valley." in system and "Bren of the valley." in system
    assert "Narrator" in system and "tools" not in system

    # The state update (in the background) sets what the next turn's request is told.
    await eventually(lambda: _holds_key(scenes(bot).scenes, guild))
    world.state_reply = {"entities": []}
    await world.play("who has the key?")
    assert "Bren (character): possessions: the iron key" in world.streams()[-1].system_text
    state = await world.slash(member, ["state", "show"])
    assert "possessions: the iron key" in state.embeds[0]["description"]

    # Restart: the scene, its state and its history are still there.
    await bot.close()
    bot = await start_bot(settings)
    await world.play("still here?")
    after = world.streams()[-1]
    assert "the iron key" in after.system_text
    assert "I keep my secrets." in json.dumps(after.contents)  # the earlier turns
    # A webhook deleted mid-scene is made again by the sender.
    (old,) = discord_fake.webhooks.values()
    discord_fake.webhook_routes.delete(old)
    aria, bren, _ = await world.play("the webhook is gone")
    (new,) = discord_fake.webhooks.values()
    assert new.id != old.id and aria.webhook_id == bren.webhook_id == new.id

    while world.turns < 50:
        aria, bren, narration = await world.play(f"turn {world.turns + 1}")
        assert (aria.author.name, aria.avatar_url) == ("Aria", avatars["Aria"])
        assert (bren.author.name, bren.avatar_url) == ("Bren", avatars["Bren"])
        assert narration.webhook_id is None
        assert aria.content == f"Welcome, traveller (turn {world.turns})."

    # Only the players' messages were answered, never the characters' own.
    assert len(world.streams()) == 50
    assert "the iron key" in world.streams()[-1].system_text
    await eventually(lambda: _turns_of(scenes(bot).scenes, guild), equals=50)  # once shown
    state = await world.slash(member, ["state", "show"])
    assert "possessions: the iron key" in state.embeds[0]["description"]
    assert "turn 50" in state.embeds[0]["title"]


async def _holds_key(store: SceneStore, guild: FakeGuild) -> bool:
    scene = await store.get(guild.text.id)
    return scene is not None and scene.state.get("bren", {}).get("possessions") == "the iron key"


async def test_who_may_change_a_scene_its_world_and_state_and_how_it_ends(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    owner = discord_fake.owner  # the server's owner: every permission
    stranger = discord_fake.add_user("stranger")
    guild.add_member(stranger, permissions=BASIC)
    await world.character("Aria")
    await world.character("Bren")

    await world.slash(member, "start", characters="Aria", world="A rainy port town.")
    twice = await world.slash(stranger, "start", characters="Bren")
    assert "already running here" in twice.content
    refused = await world.slash(stranger, "end")
    assert "Only the one who started this scene" in refused.content
    assert "Manage Server" in (await world.slash(member, "world", text="Elsewhere.")).content
    blank = await world.slash(owner, "world", text="   ")  # a world of nothing is none
    assert "is cleared" in blank.content and await scenes(bot).scenes.world(guild.id) is None
    assert "is set" in (await world.slash(owner, "world", text="The server's own world.")).content
    assert "joins" in (await world.slash(owner, "add", character="bren")).content
    fixed = await world.slash(
        member, ["state", "set"], entity="Aria", fact="condition", value="a sprained ankle"
    )
    assert "Noted" in fixed.content

    await world.play("hi all")
    system = world.streams()[-1].system_text
    assert "A rainy port town." in system and "The server's own world." not in system
    assert "Aria (character): condition: a sprained ankle" in system
    assert "Bren of the valley." in system

    # Scenes and characters of this server are nowhere in another one.
    other = discord_fake.add_guild("Other", owner=owner)
    await eventually(lambda: bot.get_guild(other.id))
    before = len(discord_fake.messages_in(other.text))
    await discord_fake.send_message(other.text, owner, "!scene state")
    answer = await discord_fake.wait_for_message(other.text, after=before)
    assert "No scene is running here" in answer.content
    await discord_fake.send_message(other.text, owner, "!scene start Aria")
    answer = await discord_fake.wait_for_message(other.text, after=before + 1)
    assert "no character called **Aria**" in answer.content
    assert await scenes(bot).scenes.get(other.text.id) is None

    # Ended: messages are answered only when addressed again, as the assistant.
    assert "has ended" in (await world.slash(member, "end")).content
    streams = len(world.streams())
    await discord_fake.send_message(guild.text, member, "anyone still here?")
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, f"<@{discord_fake.bot_user.id}> hello")
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: not m.content.endswith("⌛")
    )
    assert len(world.streams()) == streams + 1
    assert "roleplay scene" not in world.streams()[-1].system_text


async def test_a_member_who_may_not_write_here_cannot_start_a_scene_by_slash_command(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Slash commands need no right to write: a member who may only read started a scene,
    and the characters' greetings and every later turn appeared where they can't write."""
    guild.everyone.permissions &= ~SEND_MESSAGES  # a server where only some roles write
    reader = discord_fake.add_user("reader")
    guild.add_member(reader, permissions=0)
    bot = await start_bot(ai_settings())
    await world.character("Aria", "Hello, I am {{char}}.")

    refused = await world.slash(reader, "start", characters="Aria")

    assert refused.content == "You can't write here, so you can't start a scene here."
    assert await scenes(bot).scenes.get(guild.text.id) is None
    assert not [m for m in discord_fake.messages_in(guild.text) if m.webhook_id]


async def test_a_scene_is_not_started_where_the_bot_may_not_write(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Narration is the bot's own messages: where it could speak only through webhooks,
    a scene started, and each turn broke off at its first narrated line."""
    guild.everyone.permissions &= ~SEND_MESSAGES
    guild.add_member(discord_fake.bot_user, permissions=(BASIC | MANAGE_WEBHOOKS) & ~SEND_MESSAGES)
    bot = await start_bot(ai_settings())
    await world.character("Aria", "Hello, I am {{char}}.")

    refused = await world.slash(member, "start", characters="Aria")

    assert refused.content == "I can't write here, so I can't run a scene here."
    assert await scenes(bot).scenes.get(guild.text.id) is None
    assert not [m for m in discord_fake.messages_in(guild.text) if m.webhook_id]


async def test_a_scene_ends_after_its_last_turn(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings(rp_max_scene_turns=2))
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    await world.play("one")
    await world.play("two")
    notice = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "limit of 2 turns" in m.content
    )
    assert notice.webhook_id is None
    assert not scenes(bot).scenes.running(guild.text.id)
    assert await scenes(bot).scenes.get(guild.text.id) is None


async def test_a_message_left_waiting_when_the_scene_ends_gets_no_reply(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A message taken for the scene's last turn's queue was for the scene, not for the
    assistant: once the scene is over it gets no reply (it never mentioned the bot)."""
    await start_bot(ai_settings(rp_max_scene_turns=1))
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    await discord_fake.send_message(guild.text, member, "one")
    late = await discord_fake.send_message(guild.text, member, "two")  # waits behind "one"
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "limit of 1 turn and" in m.content
    )
    hello = await discord_fake.send_message(
        guild.text, member, f"<@{discord_fake.bot_user.id}> hello"
    )
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.reference == hello.id)
    assert [r.last_user_text.rsplit(": ", 1)[-1] for r in world.streams()] == ["one", "hello"]
    assert not [m for m in discord_fake.messages_in(guild.text) if m.reference == late.id]


async def test_a_scene_in_a_thread_speaks_through_the_parents_webhook(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    thread = guild.add_thread(guild.text, "the tavern", member)
    await eventually(lambda: bot.get_channel(thread.id))
    await world.slash(member, "start", channel=thread, characters="Aria, Bren")
    await discord_fake.send_message(thread, member, "hello")
    narration = await discord_fake.wait_for_message(
        thread, predicate=lambda m: m.content == "The fire crackles."
    )
    aria, bren = discord_fake.messages_in(thread)[-3:-1]
    assert (aria.author.name, bren.author.name) == ("Aria", "Bren")
    (webhook,) = discord_fake.webhooks.values()
    assert webhook.channel_id == guild.text.id and aria.webhook_id == webhook.id
    assert narration.channel_id == thread.id and not scenes(bot).scenes.running(guild.text.id)


async def test_deleted_characters_leave_their_scenes_and_the_last_one_ends_it(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    store, delete = scenes(bot).scenes, Slash(discord_fake, guild)
    for name in ("Aria", "Bren", "Cato", "Dara", "Eli", "Fenn", "Gus"):
        await world.character(name)
    await world.slash(member, "start", characters="Aria, Bren, Cato, Dara, Eli, Fenn")
    fenn = await scenes(bot).characters.get(guild.id, "Fenn")
    assert fenn is not None

    # A full scene loses a deleted character at once, so another one may join.
    assert "Deleted" in (await delete(discord_fake.owner, "delete", name="Fenn")).content
    await eventually(lambda: _cast_of(store, guild), equals=5)
    assert "joins" in (await world.slash(discord_fake.owner, "add", character="Gus")).content
    assert fenn.id not in (await _scene_of(store, guild)).characters

    # The scene is played on by those left; deleting the last one ends it with a notice.
    world.gemini.default = lambda request: "Aria: Still here."
    await discord_fake.send_message(guild.text, member, "who is left?")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content == "Still here.")
    for name in ("Aria", "Bren", "Cato", "Dara", "Eli", "Gus"):
        await delete(discord_fake.owner, "delete", name=name)
    notice = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "characters were deleted" in m.content
    )
    assert notice.webhook_id is None and not store.running(guild.text.id)

    # The channel answers as usual again: only when addressed, as the assistant.
    streams = len(world.streams())
    await discord_fake.send_message(guild.text, member, "anyone still here?")
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, f"<@{discord_fake.bot_user.id}> hello")
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: not m.content.endswith("⌛")
    )
    assert len(world.streams()) == streams + 1
    assert "roleplay scene" not in world.streams()[-1].system_text


async def test_characters_deleted_meanwhile_neither_block_nor_silence_a_scene(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Rows deleted behind the scenes' back (a deletion racing `/scene start`, say)."""
    bot = await start_bot(ai_settings())
    store, characters = scenes(bot).scenes, scenes(bot).characters
    for name in ("Aria", "Bren", "Cato", "Dara", "Eli", "Fenn", "Gus"):
        await world.character(name)
    await world.slash(member, "start", characters="Aria, Bren, Cato, Dara, Eli, Fenn")
    fenn = await characters.get(guild.id, "Fenn")
    assert fenn is not None and await characters.delete(fenn)

    # Only characters that still exist count towards the cap.
    assert "joins" in (await world.slash(discord_fake.owner, "add", character="Gus")).content
    assert await _cast_of(store, guild) == 6

    # A scene whose characters are all gone ends at its next message, with a notice.
    for name in ("Aria", "Bren", "Cato", "Dara", "Eli", "Gus"):
        gone = await characters.get(guild.id, name)
        assert gone is not None and await characters.delete(gone)
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "hello?")
    notice = await discord_fake.wait_for_message(guild.text, after=before)
    assert "characters were deleted" in notice.content and notice.webhook_id is None
    assert not store.running(guild.text.id)
    streams = len(world.streams())
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, f"<@{discord_fake.bot_user.id}> hello")
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: not m.content.endswith("⌛")
    )
    assert len(world.streams()) == streams + 1
    assert "roleplay scene" not in world.streams()[-1].system_text


async def test_a_turn_counts_only_once_its_reply_went_out(
    world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    gemini_fake.fail(400)  # the turn's reply fails
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "hello")
    failed = await discord_fake.wait_for_message(guild.text, after=before)
    assert failed.webhook_id is None
    assert await _turns_of(scenes(bot).scenes, guild) == 0
    await world.play("hello again")
    await eventually(lambda: _turns_of(scenes(bot).scenes, guild), equals=1)


async def test_the_last_turn_of_an_ended_scene_does_not_count_toward_the_next_one(
    world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A turn whose reply finishes after `/scene end` and a new `/scene start` was the old
    scene's: with a limit of one turn, it ended the new scene before anyone spoke."""
    bot = await start_bot(ai_settings(rp_max_scene_turns=1))
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    gemini_fake.hang(1.5)  # the old scene's turn, still being written
    await discord_fake.send_message(guild.text, member, "hello")
    await eventually(lambda: world.streams())
    await world.slash(member, "end")
    await world.slash(member, "start", characters="Aria")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.webhook_id is not None)
    await eventually(lambda: not scenes(bot).director._updating)

    assert await _turns_of(scenes(bot).scenes, guild) == 0
    assert scenes(bot).scenes.running(guild.text.id)
    assert not [m for m in discord_fake.messages_in(guild.text) if "limit of 1 turn" in m.content]


async def test_a_new_scene_starts_with_nothing_established_by_the_scene_before_it(
    world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The state update of the last turn of a scene, still running when the scene was
    ended and another started, wrote what the old scene established into the new one."""
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    world.state_reply = KEY_STATE
    gemini_fake.reply(
        "Aria: Welcome, traveller.\nBren: I keep my secrets.\nNarrator: The fire crackles."
    )
    gemini_fake.hang(1.5)  # the state update after the turn, answered with KEY_STATE
    await world.play("hello")
    await eventually(lambda: [r for r in gemini_fake.requests if r.method == "generateContent"])

    await world.slash(member, "end")
    await world.slash(member, "start", characters="Aria")
    await eventually(lambda: not scenes(bot).director._updating)

    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and scene.characters and scene.state == {}


async def test_typed_scene_start_takes_several_names_and_a_world_after_a_bar(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await discord_fake.send_message(guild.text, member, "!scene start Aria, bren | A port town.")
    started = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "scene begins" in m.content
    )
    assert "A scene begins with **Aria** and **Bren**" in started.content
    scene = await _scene_of(scenes(bot).scenes, guild)
    assert len(scene.characters) == 2 and scene.world == "A port town."
    await world.slash(member, "end")
    await discord_fake.send_message(guild.text, member, "!scene start Aria")  # no world
    await discord_fake.wait_for(lambda: scenes(bot).scenes.running(guild.text.id), 10)
    assert (await _scene_of(scenes(bot).scenes, guild)).world is None


async def test_typed_scene_add_and_remove_take_a_name_of_several_words_whole(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())
    for name in ("Aria", "Aria Moon", "Bren"):
        await world.character(name)
    await world.slash(member, "start", characters="Aria, Bren")
    for command, done in (("add", "joins"), ("remove", "leaves")):
        await discord_fake.send_message(guild.text, member, f"!scene {command} Aria Moon")
        said = await discord_fake.wait_for_message(
            guild.text, predicate=lambda m, done=done: done in m.content
        )
        assert said.content == f"**Aria Moon** {done} the scene."


async def test_a_character_named_twice_in_another_case_joins_once(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    await world.character("Aria", "Hello, I am {{char}}.")
    started = await world.slash(member, "start", characters="Aria, ARIA, aria")
    assert "A scene begins with **Aria**. Write here" in started.content
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.webhook_id)
    await world.play("hello")  # any second greeting would have come before the turn
    greetings = [m for m in discord_fake.messages_in(guild.text) if "I am Aria" in m.content]
    assert len(greetings) == 1
    assert len((await _scene_of(scenes(bot).scenes, guild)).characters) == 1


async def test_a_long_first_message_opens_the_scene_over_several_messages(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Imported cards' greetings often run to a few thousand characters."""
    bot = await start_bot(ai_settings())
    greeting = " ".join(f"word{i}" for i in range(500))  # about 4,400 characters
    await world.character("Aria", greeting)
    await world.slash(member, "start", characters="Aria")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "word499" in m.content)
    said = [m for m in discord_fake.messages_in(guild.text) if m.webhook_id]
    assert len(said) > 2 and {m.author.name for m in said} == {"Aria"}
    assert all(len(m.content) <= TEXT_LIMIT for m in said)
    assert " ".join(m.content for m in said) == greeting
    # The greeting is stored once all of it is shown: play only after that.
    await eventually(lambda: _stored_turns(bot, guild), equals=2)
    await world.play("hello")
    assert f"Aria: {greeting}" in json.dumps(world.streams()[-1].contents)  # kept whole


async def test_removing_a_fact_never_noted_is_refused_and_changes_nothing(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    await world.slash(member, ["state", "set"], entity="Aria", fact="location", value="the inn")
    for entity, fact in (("Ghost", "location"), ("aria", "goals")):  # a typo'd name, say
        refused = await world.slash(member, ["state", "set"], entity=entity, fact=fact, value="-")
        assert f"has no {fact} noted: nothing to remove" in refused.content
    state = (await _scene_of(scenes(bot).scenes, guild)).state
    assert state == {"aria": {"name": "Aria", "kind": "character", "location": "the inn"}}
    removed = await world.slash(member, ["state", "set"], entity="ARIA", fact="location", value="-")
    assert "Noted" in removed.content
    assert (await _scene_of(scenes(bot).scenes, guild)).state["aria"] == {
        "name": "Aria",
        "kind": "character",
    }


async def _scene_of(store: SceneStore, guild: FakeGuild) -> Scene:
    scene = await store.get(guild.text.id)
    assert scene is not None
    return scene


async def _turns_of(store: SceneStore, guild: FakeGuild) -> int:
    return (await _scene_of(store, guild)).turns


async def _stored_turns(bot: Bot, guild: FakeGuild) -> int:
    return len(await bot.chats.turns(guild.text.id))


async def _cast_of(store: SceneStore, guild: FakeGuild) -> int:
    return len((await _scene_of(store, guild)).characters)


async def test_a_turn_whose_webhook_is_moved_while_written_is_shown_and_stored_whole(
    world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The part its old webhook can no longer edit is deleted and the turn goes on in a new
    message: that deletion, heard back from Discord, took the turn out of the history."""
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    other = guild.add_text_channel("other")
    await discord_fake.wait_for(lambda: bot.get_channel(other.id))
    words = [f"word{i}" for i in range(10)]
    gemini_fake.reply(["Aria:", *(f" {w}" for w in words)], chunk_delay=0.1)
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "hello")
    await discord_fake.wait_for_message(guild.text, after=before, predicate=lambda m: m.webhook_id)
    (webhook,) = discord_fake.webhooks.values()
    discord_fake.webhook_routes.move(webhook, other)

    said = " ".join(words)
    shown = await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: m.content == said and not m.deleted
    )
    assert shown.author.name == "Aria" and shown.webhook_id != webhook.id
    turns = await eventually(lambda: _reply_stored(bot, guild))
    assert [(t.role, t.content, t.incomplete) for t in turns[-2:]] == [
        ("user", "hello", None),
        ("model", f"Aria: {said}", None),
    ]


async def _reply_stored(bot: Bot, guild: FakeGuild) -> list | None:
    turns = await bot.chats.turns(guild.text.id)
    done = turns and turns[-1].role == "model" and turns[-1].incomplete is None
    return turns if done else None


async def test_what_an_ended_scene_said_stays_out_of_what_comes_after_it(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """After `/scene end`, the assistant asked in the channel and the next scene there
    were given the ended scene's script as their conversation so far."""
    bot = await start_bot(ai_settings())
    await world.character("Aria", "Hello, I am {{char}}.")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    await world.play("the password is xyzzy")
    await eventually(lambda: _reply_stored(bot, guild))
    await world.slash(member, "end")

    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, f"<@{discord_fake.bot_user.id}> hi")
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: not m.content.endswith("⌛")
    )
    await eventually(lambda: _reply_stored(bot, guild))
    plain = json.dumps(world.streams()[-1].contents)
    assert "xyzzy" not in plain and "I am Aria" not in plain and "I keep my secrets" not in plain

    await world.slash(member, "start", characters="Bren")
    await world.play("do you remember?")
    second = json.dumps(world.streams()[-1].contents)
    assert "xyzzy" not in second and "I am Aria" not in second and " hi" not in second
    assert "do you remember?" in second
    # The ended scene's lines stay in the stored history, as before.
    assert any("xyzzy" in turn.content for turn in await bot.chats.turns(guild.text.id))


async def test_the_turn_being_written_when_a_scene_ends_stays_out_of_what_comes_after(
    world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A turn whose first words came after `/scene end` was stored after the scene's end,
    so the assistant answering next in the channel read it."""
    await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    gemini_fake.hang(1.5)  # the scene's turn, still being written
    await discord_fake.send_message(guild.text, member, "the password is xyzzy")
    await eventually(lambda: world.streams())
    await world.slash(member, "end")

    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, f"<@{discord_fake.bot_user.id}> hi")
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: m.reference and not m.content.endswith("⌛")
    )
    assert "(the password is xyzzy)" in " ".join(
        m.content for m in discord_fake.messages_in(guild.text)
    )  # shown all the same
    plain = json.dumps(world.streams()[-1].contents)
    assert "xyzzy" not in plain and "I keep my secrets" not in plain


async def test_a_scene_where_the_bot_may_no_longer_write_pauses_and_tells_its_starter_once(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A moderator took the bot's Send Messages in a scene's channel: its characters went
    on through the webhook while each narrated line failed, which cut the turn short."""
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)  # no admin
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    await world.play("hello")
    me = discord_fake.bot_user.id
    guild.set_overwrite(guild.text, me, deny=SEND_MESSAGES, member=True)
    await eventually(lambda: not _may_send(bot, guild))

    spoken = len([m for m in discord_fake.messages_in(guild.text) if m.webhook_id])
    streams = len(world.streams())
    await discord_fake.send_message(guild.text, member, "anyone?")
    await discord_fake.send_message(guild.text, member, "still nobody?")
    # `/chat` waits in the channel's queue behind both, and answers through its interaction.
    chat = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "ping"})
    await chat.wait_response()
    await discord_fake.wait_for(lambda: chat.original and chat.original.content, 10)
    dm = discord_fake.open_dm(member)
    (told,) = discord_fake.messages_in(dm)  # once
    assert "is paused" in told.content and f"<#{guild.text.id}>" in told.content
    assert len(world.streams()) == streams + 1  # the `/chat` alone
    assert len([m for m in discord_fake.messages_in(guild.text) if m.webhook_id]) == spoken

    guild.set_overwrite(guild.text, me, member=True)  # the right to write comes back
    await eventually(lambda: _may_send(bot, guild))
    aria, bren, narration = await world.play("there you are")
    assert (aria.author.name, bren.author.name) == ("Aria", "Bren")
    assert narration.webhook_id is None


def _may_send(bot: Bot, guild: FakeGuild) -> bool:
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    return channel.permissions_for(channel.guild.me).send_messages
