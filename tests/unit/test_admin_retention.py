"""The admin cog's record of pending deletions (`cogs.admin.retention`), on each backend."""

from __future__ import annotations

from typing import Any

import pytest

from cogs.admin.retention import PendingDeletions
from utils.db import Database, Params

GUILD = 1001
CHANNEL = 2002


async def test_a_second_schedule_keeps_the_first_date(db: Database) -> None:
    now = [1000.0]
    pending = PendingDeletions(db, grace=60, clock=lambda: now[0])
    assert await pending.schedule("channel", CHANNEL, GUILD) == 1060.0
    now[0] = 5000.0
    assert await pending.schedule("channel", CHANNEL, GUILD) == 1060.0
    assert await pending.targets("channel") == {CHANNEL}


async def test_schedule_returns_its_date_when_the_row_goes_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process carries the deletion out (or a rejoin cancels it) as soon as it is
    recorded: the date is still the one recorded, not None."""
    write = db.execute

    async def then_deleted(sql: str, params: Params = ()) -> Any:
        changed = await write(sql, params)
        if sql.startswith("INSERT INTO pending_deletions"):
            await write("DELETE FROM pending_deletions")
        return changed

    monkeypatch.setattr(db, "execute", then_deleted)
    pending = PendingDeletions(db, grace=60, clock=lambda: 1000.0)
    assert await pending.schedule("guild", GUILD) == 1060.0
