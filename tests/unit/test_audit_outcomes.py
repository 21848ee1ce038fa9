"""The tool audit keeps the calls whose outcome is unknown (they may have been done) as a
kind of their own: `/ai audit` shows them apart from the refused ones, and a flood of
refusals pushes none of them out."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest
from google.genai import types
from pydantic import BaseModel

from cogs.ai.tools import audit
from cogs.ai.tools.settings import audit_embed
from cogs.ai.tools.toolbox import Toolbox
from utils.db import Database, open_database
from utils.tools import Asker, Done, Family, Tool, ToolRefused, ToolRegistry

MAYBE_DONE = 28  # the migration that lists them as UNKNOWN


class NameIn(BaseModel):
    name: str


async def test_a_change_of_unknown_outcome_is_listed_apart_and_kept(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "KEEP_FAILED", 2)

    async def rename(_: Asker, args: NameIn) -> Done:
        if args.name == "maybe":  # Discord failing after the change, maybe
            unavailable = cast(Any, SimpleNamespace(status=503, reason="Service Unavailable"))
            raise discord.HTTPException(unavailable, "")
        raise ToolRefused("not allowed")

    registry = ToolRegistry()
    registry.register(
        [Tool("rename", "Rename.", Family.SERVER, rename, NameIn, changes=True, guild_only=False)]
    )
    user, channel, guild = (cast(Any, SimpleNamespace(id=n)) for n in (3, 2, 1))
    log = audit.ToolAudit(db)
    calls = [types.FunctionCall(name="rename", args={"name": "maybe"})]
    await Toolbox(registry, Asker(user, channel, guild, None), frozenset(Family), log).run_all(
        calls
    )
    for n in range(3):  # anyone can ask for what they may not do
        toolbox = Toolbox(registry, Asker(user, channel, guild, None), frozenset(Family), log)
        await toolbox.run_all([types.FunctionCall(name="rename", args={"name": str(n)})])

    (maybe,) = await log.recent(1, 10, ok=audit.UNKNOWN)
    assert maybe.result == "Discord error 503 (may have been done)"
    refused = await log.recent(1, 10, ok=audit.FAILED)
    assert [a.arguments for a in refused] == ['{"name": "2"}', '{"name": "1"}']
    embed = audit_embed([], [maybe, *refused])
    unknown, failed = embed.fields
    assert unknown.name == "May have been done (outcome unknown)"
    assert unknown.value and "❔ Discord error 503" in unknown.value
    assert "not allowed" not in unknown.value
    assert failed.name == "Refused or failed" and failed.value
    assert failed.value.count("❌ refused: not allowed") == 2 and "503" not in failed.value


def test_every_kind_at_its_longest_fits_one_embed() -> None:
    worst = "_" * 500  # each character escaped: the longest text shown
    made, unknown, failed = (
        [audit.Action(n, 2**63, 2**63, "x" * 30, worst, worst, ok, 1e10) for n in range(15)]
        for ok in (audit.DONE, audit.UNKNOWN, audit.FAILED)
    )
    embed = audit_embed(made, [*unknown, *failed])

    assert len(embed.fields) == 2 and len(embed) <= 6000


async def test_an_upgrade_lists_the_earlier_maybe_done_calls_as_unknown(
    tmp_path: Path, database_url: str
) -> None:
    """Calls recorded before `UNKNOWN` was a kind of its own were FAILED with "(may have
    been done)" after their text: the upgrade lists them as UNKNOWN, the refused stay."""
    path = tmp_path / "bot.db"
    db = open_database(database_url, path)
    await db.connect()
    for result in ("Discord error 503 (may have been done)", "refused: (may have been done) no"):
        await db.execute(
            "INSERT INTO ai_tool_actions (guild_id, channel_id, user_id, tool, arguments, "
            "result, ok, created_at) VALUES (1, 2, 3, 'rename', '{}', ?, ?, 0)",
            (result, audit.FAILED),
        )
    # Back to the schema before the upgrade, then upgraded as the bot upgrades at start.
    if db.backend == "postgresql":
        await db.execute("DELETE FROM schema_version WHERE version >= ?", (MAYBE_DONE,))
    await db.close()
    if db.backend == "sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {MAYBE_DONE - 1}")
        conn.close()
    db = open_database(database_url, path)
    await db.connect()
    try:
        (maybe,) = await audit.ToolAudit(db).recent(1, 10, ok=audit.UNKNOWN)
        assert maybe.result == "Discord error 503 (may have been done)"
        (refused,) = await audit.ToolAudit(db).recent(1, 10, ok=audit.FAILED)
        assert refused.result == "refused: (may have been done) no"
    finally:
        await db.close()
