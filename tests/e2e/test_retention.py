"""Deleted channels and left guilds: their data goes after the grace, and only theirs.

Driven through the fake Discord gateway (CHANNEL_DELETE, THREAD_DELETE, GUILD_DELETE,
GUILD_CREATE); the grace is measured by a clock the test moves. (The saved music
queue across a kick is in tests/e2e/test_music.py, which has the voice fakes.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from bot import Bot, discover_extensions
from cogs.admin.maintenance import Maintenance
from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from cogs.ai.tools.audit import ToolAudit
from cogs.music.library_store import LibraryStore
from cogs.music.settings import MusicSettingsStore
from cogs.music.store import MusicStore, Session
from cogs.music.tracks import Track
from cogs.roleplay.characters import CharacterStore, Profile
from cogs.roleplay.scenes import SceneStore
from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.clock import FakeClock
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.memory.records import Scope

DAY = 86_400.0


def maintenance(bot: Bot, *, days_from_now: float = 0) -> Maintenance:
    """The bot's maintenance cog, its clock moved `days_from_now` ahead of real time."""
    cog = cast(Maintenance, bot.get_cog("Maintenance"))  # reloaded with each bot: no isinstance
    assert cog is not None
    clock = FakeClock()
    clock.now = time.time() + days_from_now * DAY
    cog.pending.clock = clock
    return cog


async def pending(bot: Bot) -> list[tuple[str, int]]:
    rows = await bot.db.fetchall(
        "SELECT kind, target_id FROM pending_deletions ORDER BY kind, target_id"
    )
    return [(row[0], row[1]) for row in rows]


async def contents(bot: Bot) -> list[str]:
    rows = await bot.db.fetchall("SELECT content FROM ai_messages ORDER BY id")
    return [row[0] for row in rows]


def words(who: FakeUser, text: str) -> list[Turn]:
    return [Turn("user", who.id, who.name, text), Turn("model", 0, "ai", "noted")]


async def test_deleted_channel_and_thread_data_goes_after_the_grace_across_a_restart(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(settings)
    doomed = guild.add_text_channel("doomed")
    await discord_fake.wait_for(lambda: bot.get_channel(doomed.id))
    thread_id = doomed.id + 1000
    chat, memory, scope = ChatStore(bot.db), bot.memory, Scope("guild", guild.id)
    assert memory is not None
    for channel_id, text in (
        (doomed.id, "doomed words"),
        (thread_id, "thread words"),
        (guild.text.id, "kept words"),
    ):
        await chat.add_turns(guild.id, channel_id, words(member, text))
        memory.index_turns(scope, channel_id, words(member, text))
    await chat.prefs.update_channel(guild.id, doomed.id, persona="pirate")
    await memory.add_fact(scope, member.id, member.name, "alice likes tea")
    await memory.flush()

    maintenance(bot)
    guild.delete_channel(doomed)
    discord_fake.delete_thread(guild, thread_id, guild.text)
    expected = [("channel", doomed.id), ("channel", thread_id)]
    await eventually(lambda: pending(bot), equals=sorted(expected))
    await bot.close()

    bot = await start_bot(settings)  # pending deletions survive a restart
    assert await maintenance(bot, days_from_now=6.9).purge_due() == 0
    assert len(await contents(bot)) == 6
    assert await maintenance(bot, days_from_now=7.1).purge_due() == 2
    assert await contents(bot) == ["kept words", "noted"]
    assert (await ChatStore(bot.db).prefs.channel(doomed.id)).persona is None
    assert await pending(bot) == []
    assert bot.memory is not None
    texts = [m.text for m in await bot.memory.memories_of(scope, member.id, limit=50)]
    assert "alice likes tea" in texts
    assert any("kept words" in text for text in texts)
    assert not any("doomed" in text or "thread" in text for text in texts)
    recalled = await bot.memory.recall(scope, "doomed words thread words", limit=10)
    assert not any("doomed" in r.text for r in recalled)


async def test_a_guild_left_and_channels_deleted_while_the_bot_was_offline_go_after_the_grace(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    other = discord_fake.add_guild("Other")
    settings = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(settings)
    doomed = guild.add_text_channel("doomed")
    archived = guild.add_thread(guild.text, "old thread", member)
    await discord_fake.wait_for(lambda: bot.get_channel(doomed.id))
    lost_thread = doomed.id + 1000  # a thread of `doomed`: it goes with it, unannounced
    dm = discord_fake.open_dm(member)
    chat, memory = ChatStore(bot.db), bot.memory
    assert memory is not None
    for guild_id, channel_id, text in (
        (guild.id, guild.text.id, "kept words"),
        (guild.id, archived.id, "archived words"),
        (guild.id, doomed.id, "doomed words"),
        (guild.id, lost_thread, "thread words"),
        (other.id, other.text.id, "other words"),
        (None, dm.id, "dm words"),
    ):
        await chat.add_turns(guild_id, channel_id, words(member, text))
    for channel_id, text in ((doomed.id, "doomed words"), (guild.text.id, "kept words")):
        memory.index_turns(Scope("guild", guild.id), channel_id, words(member, text))
    await memory.add_fact(Scope("guild", other.id), member.id, member.name, "likes tea")
    await bot.guild_settings.set_prefix(other.id, "?")
    await memory.flush()
    await bot.close()

    guild.delete_channel(doomed)  # while the bot is offline: no event reaches it
    discord_fake.delete_thread(guild, lost_thread, doomed)
    archived.archived = True  # no longer in the guild's payload, but still there
    discord_fake.remove_guild(other)
    bot = await start_bot(settings)
    expected = [("channel", doomed.id), ("channel", lost_thread), ("guild", other.id)]
    await eventually(lambda: pending(bot), equals=sorted(expected))

    def lookups() -> list[int]:
        paths = {f"/channels/{c}": c for c in (archived.id, doomed.id, lost_thread)}
        return [paths[r.path] for r in discord_fake.requests if r.path in paths]

    assert sorted(lookups()) == sorted([archived.id, doomed.id, lost_thread])
    await maintenance(bot).schedule_gone()  # a later pass: what is due is not asked again
    assert sorted(lookups()) == sorted([archived.id, archived.id, doomed.id, lost_thread])
    assert await pending(bot) == sorted(expected)
    assert await maintenance(bot, days_from_now=8).purge_due() == 3
    assert await contents(bot) == [
        "kept words",
        "noted",
        "archived words",
        "noted",
        "dm words",
        "noted",
    ]
    assert bot.guild_settings.prefix(other.id) == "!"
    assert bot.memory is not None
    assert await bot.memory.count_of(Scope("guild", other.id), member.id) == 0
    rows = await bot.db.fetchall("SELECT text FROM memories")
    assert [row[0] for row in rows if "words" in row[0]] == ["alice: kept words\nassistant: noted"]


async def test_a_guild_left_while_offline_is_found_by_whichever_feature_holds_its_data(
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    memory = bot.memory
    assert memory is not None
    song = Track("Song", "https://example.com/song", member.id)
    left = iter(range(guild.id + 1, guild.id + 100))  # guilds the bot is not in
    marks = ConsolidationMarks(bot.db)
    holders: dict[str, Callable[[int], Awaitable[object]]] = {
        "guild settings": lambda g: bot.guild_settings.set_prefix(g, "?"),
        "ai chat": lambda g: ChatStore(bot.db).prefs.set_guild_model(g, "gemini-x"),
        "ai tool audit": lambda g: ToolAudit(bot.db).record(
            g, g + 1, member.id, "create_channel", "{}", "made", ok=True
        ),
        "memory": lambda g: memory.add_fact(Scope("guild", g), member.id, "Al", "likes tea"),
        "memory (how far consolidation read)": lambda g: marks.mark_consolidated(g, g + 1, 5),
        "music": lambda g: MusicStore(bot.db).save(Session(g, 1, 2, current=song)),
        "music settings": lambda g: MusicSettingsStore(bot.db, keep=bool).update(g, stay=True),
        "music library": lambda g: LibraryStore(bot.db).record(g, song),
        "roleplay": lambda g: CharacterStore(bot.db, limit=5).create(
            g, member.id, Profile("Aria"), None
        ),
        "roleplay scenes": lambda g: SceneStore(bot.db).set_world(g, "a moon base"),
    }

    async def forgot_one(g: int) -> None:  # only what was forgotten is left of it
        chat, scope = ChatStore(bot.db), Scope("guild", g)
        memory.index_turns(scope, g + 1, await chat.add_turns(g, g + 1, words(member, "hi")))
        await memory.flush()
        [chunk] = await memory.memories_of(scope, member.id)
        await memory.forget(scope, member.id, chunk.id)
        await chat.data.delete_guild(g)

    holders["memory (what was forgotten one by one)"] = forgot_one
    guilds = {name: next(left) for name in holders}
    for name, hold in holders.items():
        await hold(guilds[name])

    await maintenance(bot).schedule_gone()
    assert await pending(bot) == sorted(("guild", g) for g in guilds.values())


async def test_a_guild_left_while_the_session_could_not_resume_is_left_and_its_data_goes(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    other = discord_fake.add_guild("Other")
    bot = await start_bot(make_settings(memory_enabled=False), extensions=["cogs.admin"])
    await bot.guild_settings.set_prefix(other.id, "?")
    async with discord_fake.disconnected():
        discord_fake.remove_guild(other)  # kicked while the bot was away...
        await discord_fake.invalidate_session()  # ...and its GUILD_DELETE went with the session
    # discord.py waits 5 s before IDENTIFYing again
    await discord_fake.wait_for(lambda: discord_fake.identifies == 2, timeout=15)
    await eventually(lambda: pending(bot), equals=[("guild", other.id)])
    assert bot.get_guild(other.id) is None
    assert [g.id for g in bot.guilds] == [guild.id]
    assert await maintenance(bot, days_from_now=8).purge_due() == 1
    assert bot.guild_settings.prefix(other.id) == "!"


async def test_rejoining_within_the_grace_keeps_a_guild_and_leaving_for_good_deletes_it(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    other = discord_fake.add_guild("Other")
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    chat, memory = ChatStore(bot.db), bot.memory
    assert memory is not None
    await chat.add_turns(guild.id, guild.text.id, words(member, "guild words"))
    await chat.prefs.set_guild_model(guild.id, "gemini-x")
    await chat.add_turns(other.id, other.text.id, words(member, "other words"))
    await memory.add_fact(Scope("guild", guild.id), member.id, member.name, "likes tea")
    await memory.add_fact(Scope("guild", other.id), member.id, member.name, "likes coffee")
    marks = ConsolidationMarks(bot.db)
    await marks.mark_consolidated(guild.id, guild.text.id, 2)
    await marks.mark_consolidated(other.id, other.text.id, 4)
    await bot.guild_settings.set_prefix(guild.id, "?")
    await MusicStore(bot.db).save(
        Session(guild.id, guild.voice.id, guild.text.id, current=Track("Song", "x", member.id))
    )
    await bot.usage.record(guild.id, 10, 20)
    await bot.usage.record(other.id, 30, 40)

    maintenance(bot)
    discord_fake.remove_guild(guild)  # an accidental kick...
    await eventually(lambda: pending(bot), equals=[("guild", guild.id)])
    discord_fake.rejoin_guild(guild)  # ...undone within the grace
    await eventually(lambda: pending(bot), equals=[])
    assert await maintenance(bot, days_from_now=30).purge_due() == 0
    assert "guild words" in await contents(bot)
    assert bot.guild_settings.prefix(guild.id) == "?"

    maintenance(bot)  # the clock back at today
    discord_fake.remove_guild(guild)  # for good this time
    await eventually(lambda: pending(bot), equals=[("guild", guild.id)])
    assert await maintenance(bot, days_from_now=6).purge_due() == 0
    assert await maintenance(bot, days_from_now=8).purge_due() == 1
    assert await contents(bot) == ["other words", "noted"]
    assert (await chat.prefs.guild(guild.id)).model is None
    assert bot.guild_settings.prefix(guild.id) == "!"
    assert await bot.db.fetchval("SELECT count(*) FROM guild_settings") == 0
    assert await bot.db.fetchval("SELECT count(*) FROM music_sessions") == 0
    assert [row[0] for row in await bot.db.fetchall("SELECT guild_id FROM ai_usage")] == [other.id]
    assert await memory.count_of(Scope("guild", guild.id), member.id) == 0
    assert await memory.recall(Scope("guild", guild.id), "likes tea") == []
    assert await memory.count_of(Scope("guild", other.id), member.id) == 1
    read = await marks.consolidated([guild.text.id, other.text.id])
    assert read == {other.text.id: 4}, "how far the guild's channels were read goes with it"


async def test_memories_go_with_their_channel_and_guild_while_memory_is_off(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    other = discord_fake.add_guild("Other")
    here, there = Scope("guild", guild.id), Scope("guild", other.id)
    memory_on = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(memory_on)
    doomed = guild.add_text_channel("doomed")
    await discord_fake.wait_for(lambda: bot.get_channel(doomed.id))
    assert bot.memory is not None
    for scope, channel_id, text in (
        (here, doomed.id, "doomed words"),
        (here, guild.text.id, "kept words"),
        (there, other.text.id, "other words"),
    ):
        bot.memory.index_turns(scope, channel_id, words(member, text))
    await bot.memory.add_fact(there, member.id, member.name, "alice likes tea")
    await bot.memory.flush()
    await bot.close()  # saves the indexes
    indexes = memory_on.data_dir / "memory"
    assert (indexes / here.filename).exists() and (indexes / there.filename).exists()

    bot = await start_bot(make_settings(memory_enabled=False))  # memory turned off since
    assert bot.memory is None
    maintenance(bot)
    guild.delete_channel(doomed)
    discord_fake.remove_guild(other)
    expected = sorted([("channel", doomed.id), ("guild", other.id)])
    await eventually(lambda: pending(bot), equals=expected)
    assert await maintenance(bot, days_from_now=8).purge_due() == 2
    assert await pending(bot) == []
    rows = await bot.db.fetchall("SELECT scope, text FROM memories")
    assert {row[0] for row in rows} == {here.key}
    assert all("kept words" in row[1] for row in rows)
    assert not (indexes / there.filename).exists()
    await bot.close()

    bot = await start_bot(memory_on)  # memory back on: what went does not come back
    assert bot.memory is not None
    recalled = await bot.memory.recall(here, "doomed words kept words", limit=10)
    assert any("kept words" in r.text for r in recalled)
    assert not any("doomed" in r.text for r in recalled)
    assert await bot.memory.count_of(there, member.id) == 0


async def test_deletions_wait_while_a_cog_failed_to_load_and_run_once_every_cog_loads(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = discord_fake.add_guild("Other")
    settings = make_settings(memory_enabled=False)
    # The broken cog stands for any feature whose store, unloaded, could not delete its data.
    bot = await start_bot(settings, extensions=[*discover_extensions(), "tests.e2e.broken_cog"])
    await bot.guild_settings.set_prefix(other.id, "?")
    maintenance(bot)
    discord_fake.remove_guild(other)
    await eventually(lambda: pending(bot), equals=[("guild", other.id)])
    assert await maintenance(bot, days_from_now=8).purge_due() == 0
    assert await pending(bot) == [("guild", other.id)]
    assert bot.guild_settings.prefix(other.id) == "?"
    assert "tests.e2e.broken_cog failed to load" in caplog.text
    await bot.close()

    bot = await start_bot(settings)  # the cog fixed: the deletion runs
    assert await maintenance(bot, days_from_now=8).purge_due() == 1
    assert await pending(bot) == []
    assert bot.guild_settings.prefix(other.id) == "!"


async def test_a_purged_guild_leaves_nothing_in_the_live_ai_cog_for_a_re_add(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    mention = f"<@{discord_fake.bot_user.id}>"

    async def answered(text: str, sender: FakeUser = member) -> FakeMessage:
        sent = await discord_fake.send_message(guild.text, sender, text)

        def reply() -> FakeMessage | None:
            found = [m for m in discord_fake.messages_in(guild.text) if m.reference == sent.id]
            return found[0] if found and not found[0].content.endswith("⌛") else None

        return await discord_fake.wait_for(reply, timeout=10)

    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"mode": "on"}, subcommand="autorespond"
    )
    assert "Auto-respond is on" in (await discord_fake.answer(interaction)).content
    await answered("the launch code is swordfish")  # answered (auto-respond), and cached
    stored = "SELECT count(*) FROM ai_messages"
    await eventually(lambda: bot.db.fetchval(stored), equals=2)  # the exchange is stored

    maintenance(bot)
    discord_fake.remove_guild(guild)
    await eventually(lambda: pending(bot), equals=[("guild", guild.id)])
    assert await maintenance(bot, days_from_now=8).purge_due() == 1
    assert await contents(bot) == []

    discord_fake.rejoin_guild(guild)  # added back later, without a restart
    await discord_fake.wait_for(lambda: bot.get_guild(guild.id))
    asked = len(gemini_fake.requests)
    await discord_fake.send_message(guild.text, member, "no mention: auto-respond was deleted")
    await answered(f"{mention} what is the launch code?")  # after the one above, same channel
    chats = [r for r in gemini_fake.requests[asked:] if r.method == "streamGenerateContent"]
    assert len(chats) == 1, "only the mention is answered"
    assert "launch code?" in chats[0].last_user_text
    seen = json.dumps(chats[0].json)
    assert "swordfish" not in seen, "the purged conversation came back from a cache"
