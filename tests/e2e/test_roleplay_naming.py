"""How roleplay commands take the name of a character: one that shows nothing (only
spaces or invisible characters) gets a clear answer, not "no character called ****"; a
typed one in quotes is found. The real bot against the fake Discord and the fake
Gemini."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_roleplay_characters import Slash
from tests.e2e.test_roleplay_scenes import World
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini

BLANK = "\u200b \u2060\u200b"  # zero-width spaces, a space and a word joiner
NAME_ONE = "Name a character: that name shows nothing."


async def test_a_name_that_shows_nothing_is_refused_clearly(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    world = World(discord_fake, gemini_fake, guild, member)
    await start_bot(ai_settings())
    owner = discord_fake.owner
    await world.character("Aria")
    await world.character("Bren")
    none = await world.slash(owner, "start", characters=BLANK)
    assert none.content == "Name one to 6 characters, separated by commas."
    started = await world.slash(owner, "start", characters=f"Aria, {BLANK},")
    assert started.content.startswith("🎬 A scene begins with **Aria**. ")
    slash = Slash(discord_fake, guild)

    for sub, options in (
        ("show", {"name": BLANK}),
        ("export", {"name": BLANK}),
        ("edit", {"name": BLANK, "description": "x"}),
        ("delete", {"name": BLANK}),
    ):
        answer = await slash(owner, sub, **options)
        assert answer.content == NAME_ONE, sub
    for sub in ("add", "remove"):
        answer = await world.slash(owner, sub, character=BLANK)
        assert answer.content == NAME_ONE, sub

    asked = await discord_fake.send_message(guild.text, owner, f"!character show {BLANK}")
    typed = await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.id > asked.id)
    assert typed.content == NAME_ONE


async def test_a_typed_name_in_quotes_is_found(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Typed commands take the rest of the line as the name, quotes and all: out of habit
    people quote a name of several words, and were told there is no such character."""
    world = World(discord_fake, gemini_fake, guild, member)
    await start_bot(ai_settings())
    owner = discord_fake.owner
    await world.character("Aria Moon")
    await world.character("Bren")
    await world.slash(owner, "start", characters="Bren")

    async def typed(command: str) -> str:
        asked = await discord_fake.send_message(guild.text, owner, command)
        answer = await discord_fake.wait_for_message(
            guild.text, predicate=lambda m: m.id > asked.id and m.author.bot
        )
        return answer.content or answer.embeds[0]["title"]

    assert await typed('!character show "Aria Moon"') == "Aria Moon"
    assert await typed("!scene add “aria moon”") == "**Aria Moon** joins the scene."
    missing = await typed('!character show "Aria"')
    assert missing == 'This server has no character called **"Aria"**.'
