"""The toolbox in small: what the audit records of a call (as `/ai audit` shows it), a
tool whose cog was reloaded while a reply runs, and the small print of a split reply."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from google.genai import types
from pydantic import BaseModel

from cogs.ai.tools import audit
from cogs.ai.tools.settings import audit_embed
from cogs.ai.tools.toolbox import (
    MAX_LINE,
    MAX_LINK,
    MAX_WEB,
    RELOADED,
    TOO_MANY_WEB,
    Toolbox,
    footer,
)
from utils.db import Database
from utils.text import StreamSplitter
from utils.tools import Asker, Done, Family, Tool, ToolRefused, ToolRegistry, shown


class NameIn(BaseModel):
    name: str


async def test_audit_shows_names_as_they_are(db: Database) -> None:
    """Names in a note or a refusal are escaped for Discord (`shown`); the audit escapes
    what it shows itself, so recording them escaped showed #off\\_topic, backslash and all."""

    async def rename(_: Asker, args: NameIn) -> Done:
        if args.name == "mods":
            where = shown("mod_chat")
            raise ToolRefused(f"alice needs the Manage Channels permission in #{where}.")
        return Done({"renamed": args.name}, note=f"✏️ renamed #{shown(args.name)}")

    registry = ToolRegistry()
    registry.register(
        [Tool("rename", "Rename.", Family.SERVER, rename, NameIn, changes=True, guild_only=False)]
    )
    user, channel, guild = (cast(Any, SimpleNamespace(id=n)) for n in (3, 2, 1))
    log = audit.ToolAudit(db)
    toolbox = Toolbox(registry, Asker(user, channel, guild, None), frozenset(Family), log)
    names = ["off_topic *now*", "mods"]
    await toolbox.run_all([types.FunctionCall(name="rename", args={"name": n}) for n in names])

    (done,), (refused,) = await log.recent(1, 10, ok=True), await log.recent(1, 10, ok=False)
    assert done.result == "✏️ renamed #off_topic *now*"
    assert refused.result == "refused: alice needs the Manage Channels permission in #mod_chat."
    embed = audit_embed([done], [refused])
    shown_text = f"{embed.description}\n{embed.fields[0].value}"
    assert "#off\\_topic \\*now\\*" in shown_text and "#mod\\_chat." in shown_text
    assert "\\\\" not in shown_text


async def test_a_tool_whose_cog_was_reloaded_meanwhile_does_not_run() -> None:
    """`!reload music` while a reply works: the old cog's tool would act on a cog that was
    closed (a player nothing controls); the reply's later calls are refused instead."""
    ran: list[str] = []

    async def rename(_: Asker, args: NameIn) -> Done:
        ran.append(args.name)
        return Done({"renamed": args.name})

    old = Tool("rename", "Rename.", Family.MUSIC, rename, NameIn, guild_only=False)
    registry = ToolRegistry()
    registry.register([old])
    asker = Asker(cast(Any, None), cast(Any, None), None, None)
    toolbox = Toolbox(registry, asker, frozenset(Family))
    registry.unregister([old])  # the cog unloaded...
    call = types.FunctionCall(name="rename", args={"name": "first"})
    unloaded = await toolbox.run_all([call])
    registry.register([Tool("rename", "Rename.", Family.MUSIC, rename, NameIn, guild_only=False)])
    reloaded = await toolbox.run_all([call])  # ...and loaded again

    gone = {"error": RELOADED.format(family="music")}
    assert [part["function_response"]["response"] for part in unloaded + reloaded] == [  # type: ignore[index]
        gone,
        gone,
    ]
    assert ran == []


def test_the_small_print_stays_small_print_when_the_reply_is_split() -> None:
    """Five search sources (Google's redirect links run to ~250 characters) under a
    750-character answer: the split fell inside their one line, and the last sources
    showed as a message of full-size text. Each line now takes less than half a message,
    so the reply is split at a line break instead."""
    redirect = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
    sources = [(f"site{n}.example", f"{redirect}{'A' * 190}{n}") for n in range(5)]
    notes = [f"✏️ renamed #{'x' * 100} to #{'y' * 100}"] * 6  # the longest notes there are
    tail = footer([f"{note} {n}" for n, note in enumerate(notes)], sources)
    messages = StreamSplitter().finish("Kites are fun. " * 50 + tail)

    lines = [line for message in messages for line in message.splitlines()]
    assert all(line.startswith(("-# ", "Kites")) for line in lines if line)
    assert len(messages) == 2 and tail.strip() in "\n".join(messages)
    assert all(len(line) <= MAX_LINE for line in tail.splitlines())
    assert footer([], [("long", "https://long.example/" + "a" * (MAX_LINK - 21))]).count("-#") == 1


async def test_one_reply_makes_a_bounded_number_of_web_requests() -> None:
    """Each search or link is a paid request: one message asking for dozens of searches
    ran 8 a turn over every round (40 with the default rounds)."""
    asked: list[str] = []

    async def search(_: Asker, args: NameIn) -> Done:
        asked.append(args.name)
        return Done({"answer": "..."}, outside=True)

    registry = ToolRegistry()
    registry.register([Tool("search", "Search.", Family.SEARCH, search, NameIn, guild_only=False)])
    toolbox = Toolbox(
        registry, Asker(cast(Any, None), cast(Any, None), None, None), frozenset(Family)
    )
    turns = [
        [types.FunctionCall(name="search", args={"name": f"{t}-{n}"}) for n in range(8)]
        for t in range(2)
    ]
    results = [part for calls in turns for part in await toolbox.run_all(calls)]

    assert len(asked) == MAX_WEB
    responses = [part["function_response"]["response"] for part in results]  # type: ignore[index]
    assert responses[MAX_WEB:] == [{"refused": TOO_MANY_WEB}] * (16 - MAX_WEB)
