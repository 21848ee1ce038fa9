"""The time tool: IANA zones as people write them, offsets from UTC, and what it refuses."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from cogs.ai.tools.info import TimeIn, current_time
from utils.tools import Asker, ToolRefused


@pytest.mark.parametrize(
    ("asked", "zone"),
    [("utc", "UTC"), ("europe/paris", "Europe/Paris"), ("AMERICA/NEW_YORK", "America/New_York")],
)
async def test_a_time_zone_in_other_letter_case_is_known(asked: str, zone: str) -> None:
    """The model passes zones as people write them: "utc" or "europe/paris" were
    refused as unknown, though only their letter case differs from the IANA name."""
    done = await current_time(cast(Asker, None), TimeIn(timezone=asked))
    assert done.result["timezone"] == zone


@pytest.mark.parametrize("asked", ["mars/olympus", "localtime", "../../etc/passwd"])
async def test_a_time_zone_that_is_not_an_iana_name_is_refused(asked: str) -> None:
    """Not "localtime" either: the host's own zone, which says where the bot runs."""
    with pytest.raises(ToolRefused, match="not a time zone I know"):
        await current_time(cast(Asker, None), TimeIn(timezone=asked))


@pytest.mark.parametrize(
    ("asked", "zone", "hours"),
    [
        ("UTC+2", "UTC+02:00", 2),
        ("gmt-5", "UTC-05:00", -5),
        ("UTC+05:30", "UTC+05:30", 5.5),
        ("+02:00", "UTC+02:00", 2),
        ("UTC \u2212 3", "UTC-03:00", -3),
        ("GMT+0", "UTC", 0),
    ],
)
async def test_an_offset_from_utc_is_a_time_zone(asked: str, zone: str, hours: float) -> None:
    """An offset such as "UTC+2" was refused, and the model then chose Etc/GMT+2, whose
    sign is reversed (it is UTC-2): the time said was four hours off. An offset now gives
    the time at that offset."""
    before = datetime.now(UTC) + timedelta(hours=hours)
    done = await current_time(cast(Asker, None), TimeIn(timezone=asked))
    after = datetime.now(UTC) + timedelta(hours=hours)

    assert done.result["timezone"] == zone and done.result["utc_offset"] == zone
    assert done.result["time"] in {t.strftime("%A %d %B %Y, %H:%M") for t in (before, after)}


async def test_an_iana_zone_says_its_offset() -> None:
    """Etc/GMT+2 is UTC-2: the result says so, so the model does not read it as UTC+2."""
    done = await current_time(cast(Asker, None), TimeIn(timezone="Etc/GMT+2"))
    assert done.result["timezone"] == "Etc/GMT+2" and done.result["utc_offset"] == "UTC-02:00"


@pytest.mark.parametrize("asked", ["UTC+15", "+14:30", "UTC+2:75", "UTC+", "2"])
async def test_an_offset_no_place_has_is_refused(asked: str) -> None:
    with pytest.raises(ToolRefused, match="not a time zone I know"):
        await current_time(cast(Asker, None), TimeIn(timezone=asked))


async def test_time_zones_are_known_on_a_host_without_its_own_time_zone_files() -> None:
    """Slim images and Windows have no /usr/share/zoneinfo: the tzdata package stands in."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        done = await current_time(cast(Asker, None), TimeIn(timezone="europe/paris"))
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
    assert done.result["timezone"] == "Europe/Paris"
