"""Roleplay where the channel's settings get in the way: slowmode in a scene's channel,
a channel where the bot may not embed, auto-respond. The real bot against the fake
Discord and the fake Gemini."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import discord
import pytest

from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.e2e.test_roleplay_characters import Slash, card_png, picture, roleplay, upload
from tests.e2e.test_roleplay_scenes import MANAGE_WEBHOOKS, World, scenes
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini

EMBED_LINKS = discord.Permissions(embed_links=True).value
ATTACH_FILES = discord.Permissions(attach_files=True).value


async def test_under_slowmode_narration_and_the_last_turns_notice_come_at_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Slowmode holds the bot's own messages (it may not manage messages here), not its
    webhook's: narration and the notice that the scene reached its limit go through the
    webhook too, under the bot's name, rather than wait out the slowmode (or fail)."""
    world = World(discord_fake, gemini_fake, guild, member)
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    await start_bot(ai_settings(rp_max_scene_turns=2))
    await world.character("Aria")
    await world.character("Bren")
    await discord_fake.send_message(guild.text, member, "!scene start Aria, Bren")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "begins" in m.content)

    for said in ("one", "two"):  # the bot's answer above started the slowmode's wait
        aria, bren, narration = await world.play(said)
        assert aria.content == f"Welcome, traveller ({said})."
        assert narration.author.name == discord_fake.bot_user.name
        assert narration.webhook_id == aria.webhook_id == bren.webhook_id
        assert narration.webhook_id is not None
    ended = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "limit of 2 turns" in m.content
    )
    assert (ended.author.name, ended.webhook_id) == (discord_fake.bot_user.name, aria.webhook_id)


@pytest.mark.backends("sqlite")  # Discord's answers, not the storage's
async def test_under_slowmode_typed_scene_commands_say_what_they_did_at_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A typed `!scene start` saved the scene, then slowmode held its word: the error said
    to try again in 10 minutes (held too), and the characters never opened the scene. Its
    word goes through the webhook as the bot, as narration does; so do the others'."""
    world = World(discord_fake, gemini_fake, guild, member)
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    await start_bot(ai_settings())
    await world.character("Aria", first_message="Well met.")
    await world.character("Bren")
    await discord_fake.send_message(guild.text, member, "!ping")  # slowmode holds the bot next
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content[:5] == "Pong!")

    await discord_fake.send_message(guild.text, member, "!scene start Aria")
    begins = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "begins" in m.content
    )
    first = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.author.name == "Aria"
    )
    assert first.content == "Well met."
    assert (begins.author.name, begins.webhook_id) == (discord_fake.bot_user.name, first.webhook_id)
    await discord_fake.send_message(guild.text, member, "!scene add Bren")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "joins" in m.content)
    await discord_fake.send_message(guild.text, member, "!scene state")
    state = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "turn 0" in m.content
    )
    assert (state.author.name, state.webhook_id) == (discord_fake.bot_user.name, first.webhook_id)
    await discord_fake.send_message(guild.text, member, "!scene end")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "has ended" in m.content)
    assert "could not send the error reply" not in caplog.text


@pytest.mark.backends("sqlite")  # Discord's answers, not the storage's
async def test_under_slowmode_a_scene_its_characters_leave_says_it_ended_at_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The notice that a scene ended with its last character deleted was the bot's own
    message, which slowmode held: the players wrote on, unanswered, never told why."""
    world = World(discord_fake, gemini_fake, guild, member)
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    await discord_fake.send_message(guild.text, member, "!ping")  # slowmode holds the bot next
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content[:5] == "Pong!")

    await Slash(discord_fake, guild)(discord_fake.owner, "delete", name="Aria")
    ended = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "characters were deleted" in m.content
    )
    assert (ended.author.name, ended.webhook_id is not None) == (discord_fake.bot_user.name, True)


@pytest.mark.backends("sqlite")  # Discord's answers, not the storage's
async def test_under_slowmode_typed_character_commands_say_what_they_did_at_once(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    """A typed `!character create` saved the character, then slowmode held its word (and
    the error that followed): the member never heard of it. The bot's word goes through
    the webhook as the bot, as a scene's does, the card as text; the avatar it carries
    is the avatar's home."""
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    bot = await start_bot(extensions=["cogs.admin", "cogs.roleplay"])
    owner, bot_name = discord_fake.owner, discord_fake.bot_user.name
    await discord_fake.send_message(guild.text, owner, "!ping")  # slowmode holds the bot next
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content[:5] == "Pong!")

    async def typed(text: str, *files: dict) -> FakeMessage:
        before = len(discord_fake.messages_in(guild.text))
        await discord_fake.send_message(guild.text, owner, text, attachments=list(files))
        answer = await discord_fake.wait_for_message(guild.text, after=before)
        assert (answer.author.name, answer.webhook_id is not None) == (bot_name, True)
        return answer

    made = await typed('!character create Aria "Of the valley."', upload("a.png", picture()))
    assert made.content.startswith("Created **Aria**.\n**Aria**\nOf the valley.")

    async def link() -> str | None:  # remembered right after the answer is sent
        aria = await roleplay(bot).characters.get(guild.id, "Aria")
        return aria.link.url if aria is not None and aria.link is not None else None

    assert await eventually(link) == made.attachments[0].url
    imported = await typed("!character import", upload("b.png", card_png({"name": "Bren"})))
    assert imported.content.startswith("Imported **Bren**.")
    assert (await typed("!character list")).content.startswith("**Characters (2/50)**")
    assert (await typed("!character show Bren")).content.startswith("**Bren**")
    exported = await typed("!character export Bren")
    assert [a.filename for a in exported.attachments] == ["Bren.png"]
    assert (await typed("!character edit Aria Sera")).content == "Updated **Sera**."
    assert (await typed("!character delete Sera")).content == "Deleted **Sera**."


@pytest.mark.backends("sqlite")  # Discord's answers, not the storage's
async def test_under_slowmode_without_manage_webhooks_character_commands_answer_as_before(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    """Without Manage Webhooks there is no webhook to spare the answer the slowmode: it is
    the bot's own message with the card, as ever, not a notice about webhooks and the
    card as text under the bot's name in bold."""
    guild.text.rate_limit_per_user = 5
    guild.add_member(discord_fake.bot_user, permissions=BASIC)
    await start_bot(extensions=["cogs.admin", "cogs.roleplay"])
    owner = discord_fake.owner
    await discord_fake.send_message(guild.text, owner, '!character create Aria "Of the valley."')
    made = await discord_fake.wait_for_message(guild.text)
    assert (made.content, made.embeds[0]["title"]) == ("Created **Aria**.", "Aria")
    assert made.webhook_id is None and len(discord_fake.messages_in(guild.text)) == 1


async def test_under_slowmode_an_avatar_whose_message_is_gone_is_posted_again_at_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The avatar uploaded again (its message deleted) was the bot's own message, which
    slowmode held: the turn waited, or failed. It goes through the webhook now, as the
    bot, and the character speaks with it."""
    world = World(discord_fake, gemini_fake, guild, member)
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    bot = await start_bot(ai_settings())
    await world.character("Aria", first_message="Well met.")
    await world.character("Bren")
    for made in discord_fake.messages_in(guild.text):  # the avatars' homes are gone
        made.deleted = True
    store = scenes(bot).characters
    for name in ("Aria", "Bren"):  # and their links expired
        character = await store.get(guild.id, name)
        assert character is not None and character.link is not None
        await store.set_link(character, replace(character.link, url=character.link.url + "?ex=1"))
    await discord_fake.send_message(guild.text, member, "!scene start Aria, Bren")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "begins" in m.content)
    # Aria's first message, after the bot's answer above started the slowmode's wait
    first = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.author.name == "Aria"
    )
    assert (first.author.name, first.content) == ("Aria", "Well met.")

    _, bren, _ = await world.play("one")
    posted = {
        m.content: m for m in discord_fake.messages_in(guild.text) if m.content.startswith("Avatar")
    }
    for spoken in (first, bren):
        avatar = posted[f"Avatar of **{spoken.author.name}**"]
        assert (avatar.author.name, avatar.webhook_id) == (
            discord_fake.bot_user.name,
            spoken.webhook_id,
        )
        assert spoken.avatar_url == avatar.attachments[0].url


async def test_a_channel_where_the_bot_may_not_embed_gets_characters_and_state_as_text(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Without Embed Links Discord drops a message's embeds and refuses the empty rest:
    typed `!character list`, `!character show` and `!scene state` answer in plain text."""
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=EMBED_LINKS, member=True)
    await start_bot(ai_settings())
    owner = discord_fake.owner

    async def typed(text: str) -> str:
        """The bot's answer to `text` (each answer here is one message)."""
        before = len(discord_fake.messages_in(guild.text))
        await discord_fake.send_message(guild.text, owner, text)
        return (await discord_fake.wait_for_message(guild.text, after=before)).content

    card = f"**Aria**\nAria of the valley.\n**Created by**: <@{owner.id}>"
    created = await typed('!character create Aria "Aria of the valley."')
    assert created == f"Created **Aria**.\n{card}"
    assert await typed("!character list") == f"**Characters (1/50)**\n**Aria** by <@{owner.id}>"
    assert await typed("!character show Aria") == card
    assert "A scene begins" in await typed("!scene start Aria")
    state = await typed("!scene state")
    assert state == "**Scene state (turn 0)**\nNothing established yet: it fills in as you play."
    assert not any(m.embeds for m in discord_fake.messages_in(guild.text.id, from_bot=True))


async def test_a_scene_ended_where_auto_respond_is_on_says_every_message_is_answered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Not "only when asked again": auto-respond answers every message there once more."""
    world = World(discord_fake, gemini_fake, guild, member)
    await start_bot(ai_settings())
    autorespond = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"mode": "on"}, subcommand="autorespond"
    )
    (answered,) = await discord_fake.wait_for(lambda: autorespond.followups)
    assert "Auto-respond is on" in answered.content
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")

    ended = await world.slash(member, "end")
    assert ended.content == "🎬 The scene has ended. Auto-respond is on: I answer every message."


async def test_typed_export_where_the_bot_may_not_attach_files_names_the_permission(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    """Discord refused the card, and the answer was "I'm missing a permission for that
    here." without saying which."""
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=ATTACH_FILES, member=True)
    await start_bot(extensions=["cogs.admin", "cogs.roleplay"])
    owner = discord_fake.owner
    await discord_fake.send_message(guild.text, owner, '!character create Aria "Of the valley."')
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Created" in m.content)

    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, owner, "!character export Aria")
    answer = await discord_fake.wait_for_message(guild.text, after=before)
    assert answer.content == (
        "I need the **Attach Files** permission here to send the card of **Aria**."
    )
