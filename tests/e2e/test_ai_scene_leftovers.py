"""How the AI chat answers in roleplay scenes when Discord fails: a connection reset while
a turn is set up, a character's reply cut off by a crash, a scene's thread locked or its
channel deleted while a message waits; and the safety level of a scene's state update.
The real bot against the fake Discord and the fake Gemini."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import cast

import discord
import pytest

from cogs.ai.cog import AI
from cogs.ai.records import WRITING, Turn
from cogs.ai.replies import SORRY
from cogs.ai.streaming import RESTART, RESTART_NOTE, WRITING_MARKER
from cogs.roleplay.webhooks import WebhookSender
from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_roleplay_scenes import MANAGE_WEBHOOKS, World, scenes
from tests.fakes.discord_models import DEFAULT_PERMS
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_request import GeminiRequest
from tests.fakes.gemini_server import FakeGemini
from utils.text import DISCORD_LIMIT


@pytest.fixture
def scene_world(
    discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild, member: FakeUser
) -> World:
    return World(discord_fake, gemini_fake, guild, member)


async def test_a_connection_reset_renewing_an_avatar_still_plays_the_turn(
    scene_world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Renewing a character's expired avatar link at the start of a turn meets a
    connection reset: like a Discord error, the turn plays (without that avatar) and a
    warning is logged, rather than "something went wrong"."""
    world = scene_world
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    store = scenes(bot).characters
    aria = await store.get(guild.id, "Aria")
    assert aria is not None and aria.link is not None
    await store.set_link(aria, replace(aria.link, url=aria.link.url + "?ex=1"))  # expired
    renew = ("GET", f"/channels/{aria.link.channel_id}/messages/{aria.link.message_id}")
    discord_fake.dropping.add(renew)

    with caplog.at_level(logging.WARNING):
        lines = await world.play("hello")
    assert [m.content for m in lines][-1] == "The fire crackles."
    assert all(m.content != SORRY for m in discord_fake.messages_in(guild.text))
    assert f"could not renew the avatar of character {aria.id}" in caplog.text
    assert "could not direct the reply" not in caplog.text


async def test_a_characters_reply_cut_off_by_a_crash_goes_on_as_that_character(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A character's last message was full when the crash came: the restart note that no
    longer fits in it follows under the character's name, not the bot's."""
    settings = ai_settings()
    bot = await start_bot(settings, extensions=[])
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    words = "The lantern swings in the wind. " * 70
    shown = words[: DISCORD_LIMIT - len(WRITING_MARKER)].rstrip()
    spoken = await WebhookSender(bot).send(
        channel, shown + WRITING_MARKER, name="Alice", avatar_url=None
    )
    turn = Turn("model", discord_fake.bot_user.id, "Alice", shown, spoken.id, WRITING)
    await bot.chats.add_turns(guild.id, channel.id, [turn])
    await bot.close()

    bot = await start_bot(settings, extensions=["cogs.ai"])
    first, rest = await discord_fake.wait_for(
        lambda: (messages := discord_fake.messages_in(guild.text))[1:] and messages, 10
    )
    assert first.id == spoken.id and not first.content.endswith(WRITING_MARKER)
    assert (first.content + rest.content).endswith(RESTART_NOTE.strip())
    assert rest.webhook_id == first.webhook_id is not None
    assert rest.author.name == "Alice"
    assert rest.allowed_mentions == {"parse": []}
    await eventually(lambda: bot.chats.unfinished(10, lambda _: True), equals=[])
    turns = await bot.chats.turns(channel.id)
    assert [t.incomplete for t in turns] == [RESTART]


async def test_a_scenes_state_update_is_asked_for_with_the_safety_level_of_its_channel(
    scene_world: World,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A dark scene that `/ai safety off` let through would have its state update blocked
    by Google's default filter (a thread following its channel's level): then nothing it
    established is ever noted. It is asked of the server's model, as the scene's replies."""
    world = scene_world
    bot = await start_bot(ai_settings(gemini_allowed_models=["gemini-pro"]))
    await world.character("Aria")
    await world.character("Bren")
    await bot.chats.prefs.update_channel(guild.id, guild.text.id, safety="off")
    await bot.chats.prefs.set_guild_model(guild.id, "gemini-pro")
    thread = guild.add_thread(guild.text, "the crypt", member)
    await eventually(lambda: bot.get_channel(thread.id))
    await world.slash(member, "start", channel=thread, characters="Aria, Bren")
    await world.fake.send_message(thread, member, "hello")

    def update() -> GeminiRequest | None:
        asked = [r for r in gemini_fake.requests if r.method == "generateContent"]
        return asked[0] if asked else None

    request = await world.fake.wait_for(update, 10)
    assert request is not None
    config = request.json.get("generationConfig", {})
    assert "responseSchema" in config
    sent = request.json.get("safetySettings") or config.get("safetySettings")
    assert sent and len(sent) == 4 and {s["threshold"] for s in sent} == {"OFF"}
    assert request.model == "gemini-pro"


async def test_a_scene_in_a_thread_locked_meanwhile_pauses_rather_than_answer_into_it(
    scene_world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A moderator locked a scene's thread (only those who manage threads write there, and
    the bot does not): a moderator's message there costs no AI request whose lines Discord
    would refuse; the scene pauses, and its starter is told."""
    world = scene_world
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS | MANAGE_WEBHOOKS)
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    thread = guild.add_thread(guild.text, "the crypt", member)
    await eventually(lambda: bot.get_channel(thread.id))
    await world.slash(member, "start", channel=thread, characters="Aria, Bren")
    thread.locked = True
    guild.channel_updated(thread)
    await eventually(lambda: getattr(bot.get_channel(thread.id), "locked", False))

    await discord_fake.send_message(thread, discord_fake.owner, "the door is sealed")
    # `/chat` waits in the thread's queue behind it, and answers through its interaction.
    chat = await discord_fake.invoke_slash(thread, discord_fake.owner, "chat", {"prompt": "ping"})
    await discord_fake.answer(chat)
    (told,) = discord_fake.messages_in(discord_fake.open_dm(member))
    assert "is paused" in told.content
    assert [r.last_user_text for r in world.streams()] == [f"{discord_fake.owner.name}: ping"]


async def test_scene_messages_waiting_in_a_channel_deleted_meanwhile_cost_no_ai_request(
    scene_world: World,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The scene's channel was deleted while a message waited for its turn: no turn of it
    could be shown, so Google is not asked (and billed) for one."""
    world = scene_world
    doomed = guild.add_text_channel("doomed")
    bot = await start_bot(ai_settings())
    cog = cast(AI, bot.get_cog("AI"))
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", channel=doomed, characters="Aria, Bren")
    gemini_fake.reply(["Aria: Slow ", "words."], chunk_delay=0.4)
    await discord_fake.send_message(doomed, member, "first")
    await discord_fake.wait_for(lambda: world.streams() or None)
    await discord_fake.send_message(doomed, member, "second")
    await eventually(lambda: len(cog._pending), equals=2)
    guild.delete_channel(doomed)
    await eventually(lambda: len(cog._pending), equals=0)

    assert [r.last_user_text for r in world.streams()] == ["alice: first"]
