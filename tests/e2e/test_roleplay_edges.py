"""Roleplay edge cases: names that hold commas, corrections that name nothing, scenes on
a bot without AI, and commands racing each other. The real bot against the fake Discord
and the fake Gemini."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_roleplay_characters import Slash
from tests.e2e.test_roleplay_scenes import World, scenes
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


async def test_a_name_with_a_comma_starts_a_scene_whole(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """SillyTavern cards are often named "Name, the Title"; such a name is one character."""
    world = World(discord_fake, gemini_fake, guild, member)
    bot = await start_bot(ai_settings())
    await world.character("Seraphina, Forest Guardian")
    await world.character("Bren")

    started = await world.slash(member, "start", characters="seraphina, forest guardian, Bren")
    assert "A scene begins with **Seraphina, Forest Guardian** and **Bren**" in started.content
    await world.slash(member, "end")

    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(
        guild.text, member, "!scene start Bren,Seraphina,  Forest Guardian | A port town."
    )
    said = await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: "scene begins" in m.content
    )
    assert "A scene begins with **Bren** and **Seraphina, Forest Guardian**" in said.content
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and len(scene.characters) == 2 and scene.world == "A port town."

    # Completion offers the name whole, however much of it was typed.
    for typed, offered in (
        ("Bren, Seraphina, Fo", "Bren, Seraphina, Forest Guardian"),
        ("seraphina, forest g", "Seraphina, Forest Guardian"),
        ("Seraphina, Forest Guardian, Br", "Seraphina, Forest Guardian, Bren"),
    ):
        completing = await discord_fake.invoke_slash(
            guild.text,
            member,
            "scene",
            {"characters": typed},
            subcommand="start",
            focused="characters",
        )
        choices = (await completing.wait_response())["data"]["choices"]
        assert offered in [c["value"] for c in choices], (typed, choices)

    # A name that is not a character's, comma or not, is still named in the refusal.
    await world.slash(member, "end")
    refused = await world.slash(member, "start", characters="Seraphina, Bren")
    assert "no character called **Seraphina**" in refused.content


async def test_a_correction_naming_nothing_visible_is_refused_not_noted(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = World(discord_fake, gemini_fake, guild, member)
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")

    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, '!scene state set "" location the inn')
    typed = await discord_fake.wait_for_message(guild.text, after=before)
    assert "Noted" not in typed.content and "Name the character" in typed.content
    invisible = await world.slash(
        member, ["state", "set"], entity="\u200b ", fact="location", value="the inn"
    )
    assert "Noted" not in invisible.content and "Name the character" in invisible.content
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and scene.state == {}


async def test_without_ai_a_scene_is_not_started_only_to_answer_that_ai_is_off(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    world = World(discord_fake, gemini_fake, guild, member)
    bot = await start_bot(make_settings())  # no GEMINI_API_KEY
    await world.character("Aria", "Hello, I am {{char}}.")

    refused = await world.slash(member, "start", characters="Aria")
    assert "AI is not configured" in refused.content
    assert await scenes(bot).scenes.get(guild.text.id) is None
    assert not [m for m in discord_fake.messages_in(guild.text) if m.webhook_id]


async def test_two_characters_added_at_once_both_join_or_one_is_told_to_retry(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = World(discord_fake, gemini_fake, guild, member)
    bot = await start_bot(ai_settings())
    for name in ("Aria", "Bren", "Cato"):
        await world.character(name)
    await world.slash(member, "start", characters="Aria")

    answers = await asyncio.gather(
        world.slash(member, "add", character="Bren"),
        world.slash(member, "add", character="Cato"),
    )
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None
    cast = await scenes(bot).characters.by_ids(guild.id, scene.characters)
    joined = {c.name for c in cast} - {"Aria"}
    for name, answer in zip(("Bren", "Cato"), answers, strict=True):
        if name in joined:
            assert answer.content == f"**{name}** joins the scene."
        else:
            assert "try again" in answer.content, answer.content
    assert joined


async def test_a_character_deleted_twice_at_once_is_reported_deleted_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = World(discord_fake, gemini_fake, guild, member)
    await start_bot(ai_settings())
    await world.character("Aria")

    slash = Slash(discord_fake, guild)
    answers = await asyncio.gather(
        slash(discord_fake.owner, "delete", name="Aria"),
        slash(discord_fake.owner, "delete", name="Aria"),
    )
    said = [a.content for a in answers]
    assert sum(s == "Deleted **Aria**." for s in said) == 1, said


async def test_a_blank_world_given_to_a_scene_leaves_the_servers_world(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Only spaces (of any script) or invisible characters are no world: the scene plays
    in the server's, neither in an empty one nor in a world of zero-width spaces."""
    world = World(discord_fake, gemini_fake, guild, member)
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    owner = discord_fake.owner
    too_long = await world.slash(owner, "world", text="x" * 4001)
    assert too_long.content == "Keep the world to 4,000 characters at most."
    invisible = await world.slash(owner, "world", text="\u200b\u3000")
    assert "is cleared" in invisible.content and await scenes(bot).scenes.world(guild.id) is None
    await world.slash(owner, "world", text="The server's own world.")

    for blank in ("   ", "\u00a0\u3000", "\u200b \u2060"):
        await world.slash(member, "start", characters="Aria", world=blank)
        scene = await scenes(bot).scenes.get(guild.text.id)
        assert scene is not None and scene.world is None, repr(blank)
        await world.play("hello")
        assert "# The world\nThe server's own world." in world.streams()[-1].system_text
        await world.slash(member, "end")

    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "!scene start Aria | \u200b ")
    await discord_fake.wait_for_message(
        guild.text, after=before, predicate=lambda m: "scene begins" in m.content
    )
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and scene.world is None


async def test_a_correction_to_a_blank_fact_is_refused_not_noted(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = World(discord_fake, gemini_fake, guild, member)
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")

    for blank in ("   ", "\u200b"):
        refused = await world.slash(
            member, ["state", "set"], entity="Bren", fact="location", value=blank
        )
        assert "Noted" not in refused.content and "Give the location" in refused.content
    scene = await scenes(bot).scenes.get(guild.text.id)
    assert scene is not None and scene.state == {}

    # The limits are as said: a name of 64 characters and a fact of 200 are noted.
    noted = await world.slash(
        member, ["state", "set"], entity="B" * 64, fact="location", value="x" * 200
    )
    assert noted.content.startswith("Noted")
    for entity, value in (("B" * 65, "x"), ("B", "x" * 201)):
        refused = await world.slash(
            member, ["state", "set"], entity=entity, fact="location", value=value
        )
        assert refused.content == "Keep the name to 64 and the fact to 200 characters at most."


async def test_a_scene_ended_twice_at_once_is_reported_ended_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Both answered "The scene has ended", the second of a scene already over."""
    world = World(discord_fake, gemini_fake, guild, member)
    await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")

    answers = await asyncio.gather(world.slash(member, "end"), world.slash(member, "end"))
    said = [a.content for a in answers]
    assert sum(s.startswith("🎬 The scene has ended.") for s in said) == 1, said
    assert "No scene is running here" in "".join(said), said
