"""Two `python bot.py` processes, shards 0 and 1 of two, on one PostgreSQL database.

Each process identifies with a token of its own, so the fake Discord can tell who
sent what (``FakeMessage.token``, ``RequestRecord.token``); Discord would see one bot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from cogs.music.store import MusicStore
from tests.conftest import eventually
from tests.e2e.test_shards import ping
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.voice_server import FakeVoiceServer
from tests.reliability.conftest import BotProcess
from utils.db import Database

TOKENS = ("token-shard-0", "token-shard-1")

Spawn = Callable[[int], Awaitable[BotProcess]]

pytestmark = pytest.mark.shards(2)


@pytest.fixture
async def spawn(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[Spawn]:
    """Start `python bot.py` for one shard of two; returns once it answers `!ping` in its
    guild (``guild`` on shard 0, ``far`` on shard 1). Each shard keeps its DATA_DIR."""
    fake, processes = discord_fake, []

    async def start(shard: int) -> BotProcess:
        bot = await BotProcess.launch(
            fake.url,
            tmp_path / f"data-{shard}",
            tmp_path / f"shard-{shard}-{len(processes)}.out",
            DISCORD_TOKEN=TOKENS[shard],
            DATABASE_URL=database_url,
            SHARD_COUNT="2",
            SHARD_IDS=str(shard),
            MEMORY_ENABLED="false",
            MUSIC_ALLOW_PRIVATE_URLS="true",
        )
        process = bot.process
        processes.append(bot)

        def identified() -> bool:
            session = fake.sessions.get(shard)
            mine = session is not None and session.token == TOKENS[shard] and session.connected
            return mine or process.returncode is not None

        try:
            await fake.wait_for(identified, timeout=60)
            assert process.returncode is None, "the bot exited"
            pong = await ping(fake, (guild, far)[shard].text, member)
            assert pong.token == TOKENS[shard]
        except AssertionError as error:
            raise AssertionError(f"{error}\nbot output:\n{bot.output()[-3000:]}") from None
        return bot

    yield start
    for bot in processes:
        await bot.stop()


def posts(fake: FakeDiscord, guild: FakeGuild) -> list[str | None]:
    """The tokens of every message the bot posted in ``guild``'s text channel."""
    path = f"/channels/{guild.text.id}/messages"
    return [r.token for r in fake.requests if r.method == "POST" and r.path == path]


async def saved_titles(db: Database, guild: FakeGuild) -> list[str]:
    """The titles of ``guild``'s saved music session, the current one first."""
    saved = {s.guild_id: s for s in await MusicStore(db).load_all()}
    session = saved.get(guild.id)
    if session is None:
        return []
    return [t.title for t in ([session.current] if session.current else []) + session.upcoming]


@pytest.mark.slow
@pytest.mark.backends("postgresql")
async def test_two_processes_serve_their_own_guilds_and_a_killed_one_comes_back(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    member: FakeUser,
    voice_fake: FakeVoiceServer,
    media_server: FakeMediaServer,
    db: Database,
    spawn: Spawn,
) -> None:
    fake = discord_fake
    await spawn(0)
    one = await spawn(1)
    for shard, home in enumerate((guild, far)):
        pong = await ping(fake, home.text, member)
        assert pong.token == TOKENS[shard] == fake.sessions[shard].token
        assert pong.content.endswith(f"· shard {shard}")
        assert posts(fake, home) == [TOKENS[shard]] * 2, "each !ping answered once, by its shard"

    # Music in shard 1's guild, saved in the shared database.
    await fake.join_voice(member, far.voice)
    long, short = media_server.tone(440, 20, "ogg"), media_server.tone(880, 2, "ogg")
    await fake.send_message(far.text, member, f"!play {long}")
    await fake.wait_for_message(
        far.text, predicate=lambda m: "Playing tone-440hz-20s" in m.content, timeout=15
    )
    await fake.send_message(far.text, member, f"!play {short}")
    queue = ["tone-440hz-20s", "tone-880hz-2s"]
    await eventually(lambda: saved_titles(db, far), equals=queue)
    await fake.wait_for(lambda: len(fake.voice_frames(far)) >= 25, timeout=10)

    one.kill()
    await one.process.wait()
    await fake.wait_for(lambda: not fake.sessions[1].connected)
    before = len(fake.messages_in(far.text))
    await fake.send_message(far.text, member, "!ping")  # shard 1 is down: nobody hears it
    pong = await ping(fake, guild.text, member)  # sent after it, answered: shard 0 serves on
    assert pong.token == TOKENS[0]
    assert len(fake.messages_in(far.text)) == before

    frames = len(fake.voice_frames(far))
    await spawn(1)
    resumed = await fake.wait_for_message(
        far.text, predicate=lambda m: "resuming tone-440hz-20s" in m.content, timeout=20
    )
    assert resumed.token == TOKENS[1]
    await fake.wait_for(lambda: len(fake.voice_frames(far)) >= frames + 25, timeout=15)
    assert await saved_titles(db, far) == queue
    assert fake.identifies == 3 and set(posts(fake, guild)) == {TOKENS[0]}
