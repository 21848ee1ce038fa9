"""Shards end to end, in this process: the bot against a fake Discord with two shards.

One process may run every shard (SHARD_COUNT alone) or some of them (SHARD_IDS); it
hears and answers only the guilds of its shards (DMs come to shard 0), and what it
restores at start (music sessions, 24/7, replies left being written) is only theirs.
Two processes on one PostgreSQL are in tests/e2e/test_shard_processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cogs.admin.retention import PendingDeletions
from cogs.ai.records import WRITING
from cogs.ai.streaming import RESTART
from cogs.music.settings import MusicSettingsStore
from cogs.music.store import MusicStore, Session
from cogs.music.tracks import Track
from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_health import body_if, get
from tests.e2e.test_retention import maintenance, pending
from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.voice_server import FakeVoiceServer
from utils.db import Database, open_database

ADMIN_ONLY = ["cogs.admin"]

pytestmark = pytest.mark.shards(2)


async def ping(fake: FakeDiscord, channel: FakeChannel, user: FakeUser) -> FakeMessage:
    """Say ``!ping``; the bot's finished "Pong!" message."""
    before = len(fake.messages_in(channel))
    await fake.send_message(channel, user, "!ping")
    return await fake.wait_for_message(
        channel, after=before, predicate=lambda m: m.content.startswith("Pong!")
    )


@pytest.mark.backends("sqlite")
async def test_one_process_runs_both_shards_and_is_ready_only_with_both(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    fake = discord_fake
    bot = await start_bot(make_settings(shard_count=2, health_port=0), extensions=ADMIN_ONLY)
    assert sorted(fake.sessions) == [0, 1] and fake.identifies == 2
    assert (await ping(fake, guild.text, member)).content.endswith("· shard 0")
    assert (await ping(fake, far.text, member)).content.endswith("· shard 1")
    assert (await ping(fake, fake.open_dm(member), member)).content.endswith("· shard 0")
    assert await get(bot, "/readyz") == (200, "ready\n")

    async with fake.disconnected(shard=1):
        down = await eventually(lambda: body_if(bot, "/readyz", 503))
        assert down == "not ready: gateway not connected (shard 1)\n"
        await ping(fake, guild.text, member)  # shard 0 serves on meanwhile
    await eventually(lambda: body_if(bot, "/readyz", 200))
    assert fake.identifies == 2, "shard 1 resumed, not re-identified"


@pytest.mark.backends("sqlite")
async def test_a_process_of_shard_0_answers_its_guilds_and_dms_only(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    fake = discord_fake
    bot = await start_bot(make_settings(shard_count=2, shard_ids="0"), extensions=ADMIN_ONLY)
    assert list(fake.sessions) == [0]
    assert bot.owns(guild.id) and bot.owns(None) and not bot.owns(far.id)
    await fake.send_message(far.text, member, "!ping")
    pong = await ping(fake, fake.open_dm(member), member)  # sent after the one above
    assert pong.content.endswith("· shard 0")
    await ping(fake, guild.text, member)
    assert fake.messages_in(far.text) == []
    assert bot.get_guild(far.id) is None


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Database]:
    """The database a bot with ``settings`` opens, open before (or after) it runs."""
    url = settings.database_url
    db = open_database(url.get_secret_value() if url else "", settings.database_path)
    await db.connect()
    try:
        yield db
    finally:
        await db.close()


def tone_track(media: FakeMediaServer, frequency: int, requester: FakeUser) -> Track:
    url = media.tone(frequency, 2, "ogg")
    return Track(title=f"tone-{frequency}hz-2s", source=url, requester_id=requester.id)


@pytest.mark.backends("sqlite")
async def test_music_and_24_7_resume_only_in_the_guilds_of_the_process_shards(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    start_bot: StartBot,
    music_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.music.restore")
    fake = discord_fake
    stays = far.add_voice_channel("Lounge")  # 24/7 on shard 1, besides its saved queue
    for home in (guild, far):
        await fake.join_voice(member, home.voice)
    settings: dict[str, Settings] = {
        ids: music_settings(shard_count=2, shard_ids=ids) for ids in ("0", "1")
    }
    async with opened(settings["0"]) as db:
        for home, frequency in ((guild, 440), (far, 880)):
            track = tone_track(media_server, frequency, member)
            session = Session(home.id, home.voice.id, home.text.id, current=track)
            await MusicStore(db).save(session)
        await MusicSettingsStore(db, keep=lambda _: False).update(
            far.id, stay=True, stay_channel_id=stays.id, stay_text_channel_id=far.text.id
        )

    def joins(home: FakeGuild) -> list[int]:
        updates = [u for u in fake.voice_state_updates if u["channel_id"] is not None]
        return [int(u["channel_id"]) for u in updates if int(u["guild_id"]) == home.id]

    bot = await start_bot(settings["0"])
    await fake.wait_for_message(guild.text, predicate=lambda m: "resuming tone-440hz" in m.content)
    assert joins(guild) == [guild.voice.id] and joins(far) == []
    await fake.wait_for_message(guild.text, predicate=lambda m: "queue is finished" in m.content)
    assert f"guild {far.id}" not in caplog.text, "another shard's session is not this one's"
    kept = {s.guild_id: s.current for s in await MusicStore(bot.db).load_all()}
    assert kept[far.id] == tone_track(media_server, 880, member), "kept for shard 1"
    await bot.close()

    await start_bot(settings["1"])
    await fake.wait_for_message(far.text, predicate=lambda m: "resuming tone-880hz" in m.content)
    assert joins(far) == [stays.id], "24/7: its channel, with the saved queue"
    assert joins(guild) == [guild.voice.id], "shard 0's guild was not joined again"


async def seed_reply(db: Database, guild_id: int | None, message: FakeMessage) -> None:
    """A reply the last run left marked as being written, shown in ``message``."""
    await db.execute(
        "INSERT INTO ai_messages (guild_id, channel_id, message_id, author_id, author_name, "
        "role, content, tokens, created_at, incomplete) VALUES (?, ?, ?, 0, 'ai', 'model', "
        "'Half of it', 3, 0.0, ?)",
        (guild_id, message.channel_id, message.id, WRITING),
    )


@pytest.mark.backends("sqlite")
async def test_replies_left_being_written_are_finalised_by_their_shard_only(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    fake = discord_fake
    settings = make_settings(shard_count=2, shard_ids="0", memory_enabled=False)
    dm = fake.open_dm(member)
    shown: dict[int | None, FakeMessage] = {}
    async with opened(settings) as db:
        for guild_id, channel in ((guild.id, guild.text), (far.id, far.text), (None, dm)):
            shown[guild_id] = await fake.send_message(channel, fake.bot_user, "Half of it ⌛")
            await seed_reply(db, guild_id, shown[guild_id])

    bot = await start_bot(settings, extensions=["cogs.ai"])

    async def marks() -> dict[int | None, str]:
        rows = await bot.db.fetchall("SELECT guild_id, incomplete FROM ai_messages")
        return {row[0]: row[1] for row in rows}

    await eventually(marks, equals={guild.id: RESTART, None: RESTART, far.id: WRITING})
    assert shown[guild.id].edits and shown[None].edits
    assert shown[far.id].edits == [], "shard 1's reply may still be being written"


@pytest.mark.backends("sqlite")
async def test_retention_keeps_a_guild_the_bot_is_still_in_on_another_shard(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """The pass may run in a process that cannot see the guild: Discord tells."""
    bot = await start_bot(make_settings(shard_count=2, shard_ids="0"), extensions=ADMIN_ONLY)
    await bot.guild_settings.set_prefix(far.id, "?")
    await maintenance(bot).pending.schedule("guild", far.id)  # as if shard 1 saw it leave
    assert await maintenance(bot, days_from_now=8).purge_due() == 1
    assert await pending(bot) == []
    assert bot.guild_settings.prefix(far.id) == "?"
    assert await bot.guild_settings.export_guild(far.id) != []


@pytest.mark.backends("sqlite")
async def test_a_process_looks_for_guilds_left_while_offline_among_its_shards_only(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """Shard 1's guilds are not in shard 0's cache: their absence there means nothing."""
    bot = await start_bot(make_settings(shard_count=2, shard_ids="0"), extensions=ADMIN_ONLY)
    left = guild.id + (2 << 22)  # another guild of shard 0, which the bot has left
    for guild_id in (guild.id, far.id, left):
        await bot.guild_settings.set_prefix(guild_id, "?")
    await maintenance(bot).schedule_gone()
    assert await pending(bot) == [("guild", left)]


def settings_of(
    make_settings: Callable[..., Settings], tmp_path: Path, shard: int, **values: Any
) -> Settings:
    """Settings of the process that runs shard ``shard`` of two: its own token and data."""
    return make_settings(
        shard_count=2,
        shard_ids=str(shard),
        discord_token=f"token-{shard}",
        data_dir=tmp_path / f"data-{shard}",
        memory_enabled=False,
        **values,
    )


@pytest.mark.backends("postgresql")
async def test_a_prefix_set_through_one_process_is_used_by_the_other_within_a_second(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    fake = discord_fake
    zero, one = [
        await start_bot(settings_of(make_settings, tmp_path, shard), extensions=ADMIN_ONLY)
        for shard in (0, 1)
    ]
    await fake.send_message(guild.text, fake.owner, "!settings prefix ?")
    await fake.wait_for_message(guild.text, predicate=lambda m: "`?`" in m.content)
    assert zero.guild_settings.prefix(guild.id) == "?"
    await eventually(lambda: one.guild_settings.prefix(guild.id), equals="?", within=1.0)
    await fake.send_message(far.text, fake.owner, "!settings prefix $")
    await fake.wait_for_message(far.text, predicate=lambda m: "`$`" in m.content)
    await eventually(lambda: zero.guild_settings.prefix(far.id), equals="$", within=1.0)


@pytest.mark.backends("postgresql")
async def test_a_global_job_runs_once_when_two_processes_start_together(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten guilds the bot left (on both shards) are due for deletion; both processes
    become ready at the same moment and run the retention pass: each guild's data is
    deleted once."""
    caplog.set_level(logging.INFO, logger="cogs.admin.maintenance")
    fake = discord_fake
    gone = [fake.add_guild(f"gone {i}") for i in range(10)]
    async with opened(make_settings()) as db:
        retention = PendingDeletions(db, grace=0.0, clock=lambda: time.time() - 60)
        for left in gone:
            fake.remove_guild(left)
            await retention.schedule("guild", left.id)

    async with fake.holding_connections():
        starting = [
            asyncio.create_task(
                start_bot(settings_of(make_settings, tmp_path, shard), extensions=ADMIN_ONLY)
            )
            for shard in (0, 1)
        ]
        await fake.wait_for(lambda: fake.sockets == 2, timeout=10)
    zero, _ = await asyncio.gather(*starting)
    await eventually(lambda: pending(zero), equals=[])
    deleted = [r.getMessage() for r in caplog.records if "deleted the data of guild" in r.msg]
    assert len(deleted) == len(gone), deleted


@pytest.mark.backends("sqlite")
async def test_stats_of_a_process_that_runs_some_shards_says_its_figures_are_its_own(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """The bot is in two servers; this process sees one of them, and says so rather than
    give its count as the bot's."""
    await start_bot(make_settings(shard_count=2, shard_ids="0"), extensions=ADMIN_ONLY)
    await discord_fake.send_message(guild.text, member, "!stats")
    stats = (await discord_fake.wait_for_message(guild.text)).embeds[0]
    assert {f["name"]: f["value"] for f in stats["fields"]}["Guilds"] == "1"
    assert stats["footer"]["text"] == (
        "This process runs 1 of 2 shards: the guilds, latency, memory and commands run are its own"
    )
