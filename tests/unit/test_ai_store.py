"""ChatStore: token-budgeted context, pruning, reset, channel preferences, its cache."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from cogs.ai.log import ChatLogReader
from cogs.ai.records import Tail, Turn, Unfinished
from cogs.ai.store import ChatStore
from utils.db import Database, Params


@pytest.fixture
def store(db: Database) -> ChatStore:
    return ChatStore(db, context_tokens=100, history_limit=10)


def everywhere(guild_id: int | None) -> bool:
    return True


def exchange(i: int, padding: int = 36) -> list[Turn]:
    return [
        Turn("user", 7, "alice", f"question {i} " + "x" * padding),
        Turn("model", 0, "ai", f"answer {i}"),
    ]


async def test_recent_turns_fit_the_budget_newest_first(store: ChatStore) -> None:
    for i in range(5):
        await store.add_turns(1, 10, exchange(i))
    await store.add_turns(1, 11, exchange(99))  # another channel
    turns, overflow = await store.recent_turns(10, 0, budget=30)
    assert overflow
    assert [t.content.split()[1] for t in turns] == ["4", "4"][: len(turns)] or turns[
        -1
    ].content == "answer 4"
    assert turns[-1].content == "answer 4" and turns[0].id < turns[-1].id
    everything, overflow = await store.recent_turns(10, 0, budget=10_000)
    assert not overflow and len(everything) == 10
    assert all("99" not in t.content for t in everything)


async def test_history_is_pruned_to_the_limit(store: ChatStore) -> None:
    for i in range(6):
        await store.add_turns(1, 10, exchange(i))
    remaining = await store.turns(10)
    assert [t.content for t in remaining][-1] == "answer 5" and len(remaining) == 10
    assert remaining[0].content.startswith("question 1 ")


async def test_reset_clears_history_and_summary_but_keeps_prefs(store: ChatStore) -> None:
    await store.add_turns(1, 10, exchange(0))
    await store.prefs.update_channel(1, 10, persona="pirate", summary="s", summary_upto=2)
    assert await store.reset(10) == 2
    prefs = await store.prefs.channel(10)
    assert prefs.persona == "pirate" and prefs.summary is None and prefs.summary_upto == 0
    assert await store.count(10) == 0


async def test_channel_preferences_and_guild_model(store: ChatStore) -> None:
    assert (await store.prefs.channel(5)).autorespond is False
    await store.prefs.update_channel(1, 5, autorespond=1)
    await store.prefs.update_channel(1, 6, autorespond=0)
    assert store.prefs.autoresponds(5) and not store.prefs.autoresponds(6)
    with pytest.raises(ValueError):
        await store.prefs.update_channel(1, 5, nonsense=1)
    await store.prefs.set_guild_model(1, "gemini-x")
    assert (await store.prefs.guild(1)).model == "gemini-x"
    assert (await store.prefs.guild(None)).model is None


@pytest.mark.parametrize(("context_tokens", "history_limit"), [(60, 12), (200, 6), (60, 6)])
async def test_the_cache_answers_like_the_database(
    db: Database, context_tokens: int, history_limit: int
) -> None:
    """Whatever happens, the cached store gives what a fresh one reads from disk
    (the second case prunes turns the cache holds, the third what it left out)."""
    limits = {"context_tokens": context_tokens, "history_limit": history_limit}
    cached = ChatStore(db, **limits)
    rng = random.Random(7)
    for step in range(150):
        channel = rng.choice([10, 11])
        action = rng.random()
        if action < 0.45:
            await cached.add_turns(1, channel, exchange(step, rng.choice([0, 36, 200])))
        elif action < 0.6:  # a reply rewritten as it streams (it may grow past the budget)
            models = [t for t in await cached.turns(channel) if t.role == "model"]
            if models:
                text = f"answer {step} " + "y" * rng.choice([0, 20, 80, 300])
                incomplete = rng.choice([None, "interrupted", "restart"])
                await cached.rewrite_turn(channel, models[-1], text, incomplete, step)
        elif action < 0.65:  # replies found still being written at a start
            for reply in await cached.unfinished(2, everywhere):
                await cached.mark_unfinished(reply, "restart")
        elif action < 0.7:
            await cached.reset(channel)
        elif action < 0.85:
            turns = await cached.turns(channel)
            if turns:
                upto = rng.choice(turns).id
                await cached.prefs.update_channel(1, channel, summary=f"s{step}", summary_upto=upto)
        else:
            safety = rng.choice([None, "low", "off"])
            await cached.prefs.update_channel(1, channel, persona=f"p{step}", safety=safety)
        fresh = ChatStore(db, **limits)
        prefs = await cached.prefs.channel(channel)
        assert prefs == await fresh.prefs.channel(channel)
        for after_id in {0, prefs.summary_upto}:
            for budget in (5, 30, context_tokens):
                got = await cached.recent_turns(channel, after_id, budget)
                assert got == await fresh.recent_turns(channel, after_id, budget)


@pytest.mark.parametrize("write", ["add", "reset"])
async def test_a_read_racing_a_write_is_not_cached_stale(
    db: Database, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    store = ChatStore(db)
    await store.add_turns(1, 10, exchange(0))
    read, gate = asyncio.Event(), asyncio.Event()
    fetchall = db.fetchall

    async def slow_fetchall(*args: object) -> list[object]:
        rows = await fetchall(*args)
        read.set()
        await gate.wait()  # the write commits between this read and its use
        return rows

    monkeypatch.setattr(db, "fetchall", slow_fetchall)
    loading = asyncio.create_task(store.recent_turns(10, 0, 1000))
    await read.wait()
    if write == "add":
        await store.add_turns(1, 10, exchange(1))
    else:
        await store.reset(10)
    gate.set()
    stale, _ = await loading
    assert stale[-1].content == "answer 0"  # what it read before the write
    monkeypatch.setattr(db, "fetchall", fetchall)
    turns, _ = await store.recent_turns(10, 0, 1000)
    assert [t.content for t in turns][-1:] == (["answer 1"] if write == "add" else [])


async def test_a_write_cancelled_after_it_committed_leaves_no_stale_cache(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChatStore(db)
    await store.add_turns(1, 10, exchange(0))
    await store.prefs.update_channel(1, 10, persona="first")
    assert (await store.prefs.channel(10)).persona == "first"  # both now cached
    assert (await store.recent_turns(10, 0, 1000))[0][-1].content == "answer 0"
    transaction = db.transaction

    @asynccontextmanager
    async def commit_then_cancel() -> AsyncIterator[object]:
        async with transaction() as conn:
            yield conn
        raise asyncio.CancelledError  # as if cancelled while the commit came back

    execute = db.execute

    async def execute_then_cancel(sql: str, params: Params = ()) -> int:
        await execute(sql, params)  # one statement runs without a transaction on PostgreSQL
        raise asyncio.CancelledError

    monkeypatch.setattr(db, "transaction", commit_then_cancel)
    monkeypatch.setattr(db, "execute", execute_then_cancel)
    with pytest.raises(asyncio.CancelledError):
        await store.add_turns(1, 10, exchange(1))
    with pytest.raises(asyncio.CancelledError):
        await store.prefs.update_channel(1, 10, persona="second")
    monkeypatch.undo()
    assert (await store.recent_turns(10, 0, 1000))[0][-1].content == "answer 1"
    assert (await store.prefs.channel(10)).persona == "second"


def test_a_turn_loaded_and_then_appended_is_kept_once() -> None:
    tail = Tail()
    turn = Turn("user", 7, "alice", "hi", id=5, tokens=1)
    tail.append(turn, max_tokens=10)
    tail.append(turn, max_tokens=10)
    assert list(tail.turns) == [turn] and tail.tokens == 1


async def test_guild_model_cache_follows_changes(store: ChatStore) -> None:
    assert (await store.prefs.guild(1)).model is None
    await store.prefs.set_guild_model(1, "gemini-x")
    assert (await store.prefs.guild(1)).model == "gemini-x"
    await store.prefs.set_guild_model(1, None)
    assert (await store.prefs.guild(1)).model is None


async def test_guild_tool_families_are_kept_beside_the_model(store: ChatStore) -> None:
    assert (await store.prefs.guild(1)).tools is None  # never chosen: the defaults
    await store.prefs.set_guild_model(1, "gemini-x")
    await store.prefs.set_guild_tools(1, frozenset({"music", "server"}))
    prefs = await store.prefs.guild(1)
    assert prefs.model == "gemini-x" and prefs.tools == {"music", "server"}
    await store.prefs.set_guild_tools(1, frozenset())
    assert (await store.prefs.guild(1)).tools == frozenset()  # all off is not the defaults
    reread = ChatStore(store.db).prefs
    assert (await reread.guild(1)).tools == frozenset()  # stored, not only cached
    assert (await store.prefs.guild(2)).tools is None


async def test_a_reply_stored_early_is_rewritten_in_place(store: ChatStore) -> None:
    user, model = await store.add_turns(
        1,
        10,
        [
            Turn("user", 7, "alice", "tell me"),
            Turn("model", 0, "ai", "Half", None, "interrupted"),
        ],
    )
    assert (await store.recent_turns(10, 0, 1000))[0][-1].incomplete == "interrupted"  # cached
    whole = await store.rewrite_turn(10, model, "Half of it, and the rest.", None, 99)
    assert (whole.id, whole.content, whole.incomplete, whole.message_id) == (
        model.id,
        "Half of it, and the rest.",
        None,
        99,
    )
    assert await store.turns(10) == [user, whole]
    assert (await store.recent_turns(10, 0, 1000))[0] == [user, whole]


async def test_deleting_any_message_of_a_reply_split_over_several_takes_the_reply_out(
    store: ChatStore,
) -> None:
    async def split_reply(first: int, question: str) -> Turn:
        """A reply shown in messages first, first + 1 and first + 2, stored as it grew."""
        _, model = await store.add_turns(
            1,
            10,
            [Turn("user", 7, "alice", question), Turn("model", 0, "ai", "a", first + 1)],
            parts=[first],  # its first words already filled a message
        )
        return await store.rewrite_turn(10, model, "a b", None, first + 2, [first + 1])

    await split_reply(100, "one")
    await split_reply(200, "two")
    await split_reply(300, "three")
    await store.recent_turns(10, 0, 1000)  # cached

    assert [t.content for t in await store.data.delete_messages(10, [100])] == ["a b"]
    assert [t.content for t in await store.data.delete_messages(10, [201, 999])] == ["a b"]
    # A bulk delete of a part and the latest message of another reply: each goes once.
    assert [t.content for t in await store.data.delete_messages(10, [300, 302])] == ["a b"]
    assert [t.content for t in (await store.recent_turns(10, 0, 1000))[0]] == [
        "one",
        "two",
        "three",
    ]
    assert await store.db.fetchval("SELECT count(*) FROM ai_reply_parts") == 0
    await split_reply(400, "four")
    await store.reset(10)  # the parts go with their reply, whatever deletes it
    assert await store.db.fetchval("SELECT count(*) FROM ai_reply_parts") == 0


async def test_a_reply_message_sent_again_leaves_the_reply_when_the_old_one_is_deleted(
    store: ChatStore,
) -> None:
    """A character's message whose webhook went is sent again and the old one deleted:
    that deletion took the reply out of the history."""
    await store.add_turns(
        1, 10, [Turn("user", 7, "alice", "q"), Turn("model", 0, "ai", "a", 2)], parts=[1]
    )
    await store.recent_turns(10, 0, 1000)  # cached
    await store.replace_message(10, 1, 11)  # an earlier part
    await store.replace_message(10, 2, 12)  # the latest message
    assert await store.data.delete_messages(10, [1, 2]) == []
    assert [t.message_id for t in (await store.recent_turns(10, 0, 1000))[0]] == [None, 12]
    assert [t.content for t in await store.data.delete_messages(10, [11])] == ["a"]


async def test_a_reply_deleted_while_it_grows_notes_no_parts(store: ChatStore) -> None:
    _, model = await store.add_turns(
        1, 10, [Turn("user", 7, "alice", "q"), Turn("model", 0, "ai", "a", 1)]
    )
    await store.data.delete_messages(10, [1])
    await store.rewrite_turn(10, model, "a b", None, 2, [1])  # its next message went out
    assert await store.db.fetchval("SELECT count(*) FROM ai_reply_parts") == 0
    assert [t.content for t in await store.turns(10)] == ["q"]


async def test_replies_left_being_written_are_found_and_marked(store: ChatStore) -> None:
    def reply(text: str, message_id: int, incomplete: str | None) -> list[Turn]:
        return [
            Turn("user", 7, "alice", "q"),
            Turn("model", 0, "ai", text, message_id, incomplete),
        ]

    await store.add_turns(1, 10, reply("whole", 1, None))
    _, left = await store.add_turns(1, 10, reply("Half", 2, "interrupted"))
    await store.add_turns(1, 11, reply("Cut", 3, "restart"))
    _, other = await store.add_turns(None, 12, reply("In a DM", 4, "interrupted"))
    _, finished = await store.add_turns(1, 11, reply("Soon whole", 5, "interrupted"))

    found = await store.unfinished(10, everywhere)
    assert found == [
        Unfinished(left.id, 10, 2, 1),
        Unfinished(other.id, 12, 4, None),
        Unfinished(finished.id, 11, 5, 1),
    ]
    assert await store.unfinished(1, everywhere) == found[:1], "the oldest first"
    in_guilds = await store.unfinished(1, lambda guild_id: guild_id is not None)
    assert in_guilds == [found[0]]
    assert await store.unfinished(1, lambda guild_id: guild_id is None) == [found[1]], (
        "another process's replies ahead of this one's do not hide them"
    )
    query = "SELECT id FROM ai_messages WHERE incomplete = 'interrupted' ORDER BY id"
    if store.db.backend == "sqlite":
        plan = [row["detail"] for row in await store.db.fetchall(f"EXPLAIN QUERY PLAN {query}")]
    else:  # PostgreSQL scans a table this small unless told not to
        async with store.db.transaction() as conn:
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = [row[0] for row in await conn.fetchall(f"EXPLAIN {query}")]
    assert "ai_messages_writing" in " ".join(plan)

    assert (await store.recent_turns(10, 0, 1000))[0][-1].incomplete == "interrupted"  # cached
    await store.rewrite_turn(11, finished, "Soon whole, and done.", None, 5)  # it finished
    for found_reply in found:
        await store.mark_unfinished(found_reply, "restart")
    assert (await store.recent_turns(10, 0, 1000))[0][-1].incomplete == "restart"
    assert [(t.content, t.incomplete) for t in await store.turns(11) if t.role == "model"] == [
        ("Cut", "restart"),
        ("Soon whole, and done.", None),
    ], "a reply that finished meanwhile is left alone"
    assert await store.unfinished(10, everywhere) == []


async def test_a_reply_rewritten_shorter_brings_back_the_turns_it_pushed_out(
    store: ChatStore,
) -> None:
    await store.add_turns(1, 10, exchange(0))
    _, model = await store.add_turns(1, 10, exchange(1))
    await store.recent_turns(10, 0, 1000)  # cached
    long = await store.rewrite_turn(10, model, "y" * 380, "interrupted", 1)
    assert [t.id for t in (await store.recent_turns(10, 0, 1000))[0]] == [long.id]
    short = await store.rewrite_turn(10, long, "answer 1", None, 1)
    turns, overflow = await store.recent_turns(10, 0, 1000)
    assert (turns, overflow) == await ChatStore(db=store.db, context_tokens=100).recent_turns(
        10, 0, 1000
    )
    assert len(turns) == 4 and turns[-1] == short and not overflow


async def test_the_read_api_memory_uses(store: ChatStore) -> None:
    """Channels with turns after an id (by their newest turn, oldest first, paged), and
    a channel's newest turns after an id, oldest first."""
    log = ChatLogReader(store.db)
    first = await store.add_turns(1, 10, exchange(0))
    await store.add_turns(None, 20, exchange(1))
    third = await store.add_turns(1, 10, exchange(2))
    heads = await log.channel_heads(0, 10)
    assert [(h.channel_id, h.guild_id, h.last_id) for h in heads] == [
        (20, None, first[-1].id + 2),
        (10, 1, third[-1].id),
    ]
    [page] = await log.channel_heads(0, 1)
    assert page.channel_id == 20
    assert [h.channel_id for h in await log.channel_heads(page.last_id, 1)] == [10]
    assert await log.channel_heads(third[-1].id, 10) == []
    newest = await log.newest_turns(10, first[0].id, 2)
    assert [t.id for t in newest] == [t.id for t in third]
    assert [t.content for t in newest] == ["question 2 " + "x" * 36, "answer 2"]
    assert [t.id for t in await log.newest_turns(10, 0, 10)] == [t.id for t in first + third]


async def test_auto_respond_is_answered_from_memory_and_follows_every_change(
    db: Database, store: ChatStore
) -> None:
    await store.prefs.update_channel(1, 5, autorespond=1)
    await store.prefs.update_channel(1, 6, autorespond=1)
    await store.prefs.update_channel(2, 7, autorespond=1)
    await store.prefs.update_channel(2, 8, autorespond=1)
    await store.prefs.update_channel(1, 6, autorespond=0)
    await store.data.delete_channel(7)
    await store.data.delete_guild(1)
    expected = {5: False, 6: False, 7: False, 8: True}
    assert {channel: store.prefs.autoresponds(channel) for channel in expected} == expected
    restarted = ChatStore(db)
    await restarted.prefs.load_autorespond()
    await db.close()  # asked for every message: it never reads the database
    assert {channel: restarted.prefs.autoresponds(channel) for channel in expected} == expected


async def test_context_is_one_read_of_everything_a_reply_needs(db: Database) -> None:
    store = ChatStore(db, context_tokens=100)
    for i in range(4):
        await store.add_turns(1, 10, exchange(i))
    await store.prefs.update_channel(1, 10, persona="pirate", safety="high", summary="s" * 80)
    await store.prefs.set_guild_model(1, "gemini-x")
    turns, _ = await store.recent_turns(10, 0, 1000)
    # 100 tokens less 20 of summary and 40 reserved: the newest 5 turns fit (2+12+2+12+2)
    context = await store.context(1, 10, reserve=40)
    assert context.turns == turns[-5:] and context.overflow
    assert (context.prefs.persona, context.prefs.safety, context.model) == (
        "pirate",
        "high",
        "gemini-x",
    )
    assert (await store.context(1, 10)).turns == turns and not (await store.context(1, 10)).overflow
    await db.close()  # read once, a channel's context comes from the cache
    assert await store.context(1, 10, reserve=40) == context


async def test_an_edited_message_is_rewritten_and_its_summary_dropped(store: ChatStore) -> None:
    question = Turn("user", 7, "alice", "my PIN is 4821", message_id=500)
    reply = Turn("model", 0, "ai", "noted", message_id=501)
    stored = await store.add_turns(1, 10, [question, reply])
    await store.add_turns(1, 10, exchange(1))
    assert await store.save_summary(1, 10, "Alice's PIN is 4821.", stored, since=0)

    data = store.data
    assert await data.edit_message(10, 500, "my PIN is 4821") == (True, None)  # a link preview
    assert (await store.prefs.channel(10)).summary == "Alice's PIN is 4821."
    assert await data.edit_message(10, 501, "changed") == (False, None)  # replies are the bot's
    assert await data.edit_message(11, 500, "changed") == (False, None)  # another channel's

    held, first = await data.edit_message(10, 500, "my PIN is secret")
    assert held
    assert first is not None and first.content == "my PIN is 4821"
    assert (await store.prefs.channel(10)).summary is None
    contents = [t.content for t in await store.turns(10)]
    assert contents[:2] == ["my PIN is secret", "noted"]


async def test_the_id_of_a_deleted_message_is_never_given_again(store: ChatStore) -> None:
    """Marks are kept by turn id (summaries, what memory read or was told to forget): a
    new message must not take the id of the newest one after it was deleted."""
    question, reply = await store.add_turns(1, 10, exchange(1))
    assert await store.data.delete_messages(10, [501]) == [] and reply.id > question.id
    gone = await store.add_turns(1, 10, [replace(reply, message_id=501, id=0)])
    await store.data.delete_messages(10, [501])
    await store.reset(10)
    [new] = await store.add_turns(1, 10, exchange(2)[:1])
    assert new.id > gone[0].id


async def test_a_summary_of_turns_changed_meanwhile_is_not_stored(store: ChatStore) -> None:
    """The model writes a summary from turns read earlier: if one was edited, deleted or
    reset since, or another summary came first, storing it would bring back what is gone."""
    question = Turn("user", 7, "alice", "my PIN is 4821", message_id=500)
    folded = await store.add_turns(1, 10, [question, Turn("model", 0, "ai", "noted")])
    await store.data.edit_message(10, 500, "my PIN is secret")
    assert not await store.save_summary(1, 10, "Alice's PIN is 4821.", folded, since=0)
    folded = await store.turns(10)
    await store.data.delete_messages(10, [500])
    assert not await store.save_summary(1, 10, "Alice's PIN is a secret.", folded, since=0)
    folded = await store.turns(10)
    assert await store.save_summary(1, 10, "The bot noted something.", folded, since=0)
    assert not await store.save_summary(1, 10, "Again.", folded, since=0)  # the mark moved
    assert (await store.prefs.channel(10)).summary == "The bot noted something."


async def test_after_a_fresh_start_replies_read_nothing_from_before_it_which_stays_stored(
    store: ChatStore,
) -> None:
    """A roleplay scene began or ended in the channel: what was said before it, and its
    summary, stay out of the context; a summary of those turns, or a reply to them,
    written meanwhile is not stored (it would bring them back)."""
    before = await store.add_turns(1, 10, exchange(0))
    await store.prefs.update_channel(1, 10, summary="Of old.", summary_upto=before[0].id)
    assert (await store.context(1, 10)).turns == before[1:]

    await store.start_afresh(1, 10)
    context = await store.context(1, 10)
    assert context.turns == [] and context.prefs.summary is None
    assert not await store.save_summary(1, 10, "Of what went before.", before, since=0)
    after = await store.add_turns(1, 10, exchange(1))
    assert (await store.context(1, 10)).turns == after
    assert [t.id for t in await store.turns(10)] == [t.id for t in before + after]

    read = (await store.prefs.channel(10)).context_from  # by a reply, still being written
    await store.start_afresh(1, 10)
    first = (await store.prefs.channel(10)).context_from
    await store.start_afresh(1, 10)  # nothing said in between: the mark moves all the same
    mark = (await store.prefs.channel(10)).context_from
    assert read < first < mark and (await store.context(1, 10)).turns == []
    assert await store.add_turns(1, 10, exchange(2), continues=after[1].id, fresh_from=read) == []
    assert await store.add_turns(1, 10, exchange(3), fresh_from=mark)


async def test_text_the_database_cannot_hold_is_kept_in_memory_as_it_is_stored(
    store: ChatStore, db: Database
) -> None:
    """A NUL or half a surrogate pair (from a message, or the model) is stored replaced by
    U+FFFD: the turns given back and the cache hold the same, so a restart changes
    nothing of the history, a summary of them is saved, and an edit that changes nothing
    (a link preview) is no change."""
    odd = "a NUL \x00 and half \ud83d a pair"
    said = "a NUL \ufffd and half \ufffd a pair"
    question, reply = await store.add_turns(
        1, 10, [Turn("user", 7, "al\x00ice", odd, message_id=500), Turn("model", 0, "ai", "ok")]
    )
    assert (question.content, question.author_name) == (said, "al\ufffdice")
    reply = await store.rewrite_turn(10, reply, f"ok: {odd}", None, 501)
    assert reply.content == f"ok: {said}"
    cached = await store.recent_turns(10, 0, 100)
    assert cached == await ChatStore(db, context_tokens=100).recent_turns(10, 0, 100)
    assert [t.content for t in cached[0]] == [said, f"ok: {said}"]

    assert await store.data.edit_message(10, 500, odd) == (True, None)
    assert await store.save_summary(1, 10, "Alice wrote oddly.", [question, reply], since=0)
    assert (await store.prefs.channel(10)).summary == "Alice wrote oddly."


async def test_a_reset_tells_the_other_processes(
    store: ChatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another shard process must not keep answering from the history it has cached."""
    told: list[tuple[str, object]] = []

    async def notify(topic: str, key: object) -> None:
        told.append((topic, key))

    monkeypatch.setattr(store.db, "notify", notify)
    await store.add_turns(1, 10, exchange(0))
    told.clear()
    await store.reset(10)
    assert [key for _, key in told] == [10]


async def test_a_discord_messages_turns_are_found_by_an_index_not_the_channels_history(
    store: ChatStore,
) -> None:
    # Deleted and edited messages are looked up for every message the bot can see.
    await store.add_turns(1, 10, exchange(1))
    lookups = [
        "SELECT id FROM ai_messages WHERE channel_id = 10 AND message_id = 1 AND role = 'user'",
        "SELECT id FROM ai_messages WHERE channel_id = 10 AND (message_id IN (1, 2) "
        "OR id IN (SELECT turn_id FROM ai_reply_parts WHERE message_id IN (1, 2)))",
    ]
    for query in lookups:
        if store.db.backend == "sqlite":
            rows = await store.db.fetchall(f"EXPLAIN QUERY PLAN {query}")
            plan = [row["detail"] for row in rows]
        else:  # PostgreSQL scans a table this small unless told not to
            async with store.db.transaction() as conn:
                await conn.execute("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in await conn.fetchall(f"EXPLAIN {query}")]
        assert "ai_messages_message" in " ".join(plan), plan
