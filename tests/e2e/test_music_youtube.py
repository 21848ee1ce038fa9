"""YouTube's bot check end to end: yt-dlp (with the local search extractor standing in
for YouTube) fails with the sign-in wall; the user gets one line, the owner a log
line; the cookies file and extractor arguments reach yt-dlp."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.e2e.music_world import World
from tests.fakes.media_server import LocalSearchIE

# YouTube's bot check; storage is beside the point.
pytestmark = pytest.mark.backends("sqlite")

SIGN_IN = (
    "Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies for the "
    "authentication. See https://github.com/yt-dlp/yt-dlp/wiki/FAQ for how to pass cookies."
)
COOKIES = "# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t0\tSID\tlogged-in-sid\n"


async def test_the_bot_check_gets_one_clear_line_and_tells_the_owner_what_to_do(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cogs.music")
    LocalSearchIE.refusal = SIGN_IN
    await world.start()
    assert await world.slash("play", query="a calm tone") == (
        "YouTube is asking this bot to prove it isn't a bot; the owner has been told how to fix it."
    )
    [hint] = [r for r in caplog.records if "bot check" in r.getMessage()]
    assert hint.levelno == logging.WARNING
    assert "MUSIC_YTDLP_COOKIES" in hint.getMessage() and "README" in hint.getMessage()


async def test_the_cookies_file_and_extractor_args_reach_yt_dlp(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(COOKIES)
    world.media.tone(440, 1, "ogg")
    LocalSearchIE.results["calm"] = ("Calm", world.media.tone(440, 1, "ogg"))
    args = "youtube:player_client=web,mweb;po_token=web.gvs+SECRET-TOKEN"
    await world.start(music_ytdlp_cookies=cookies, music_ytdlp_extractor_args=args)
    assert (await world.slash("play", query="calm please")).startswith("▶️ Playing Calm")
    assert LocalSearchIE.seen[0] == {
        "extractor_args": {
            "youtube": {"player_client": ["web", "mweb"], "po_token": ["web.gvs+SECRET-TOKEN"]}
        },
        "sid": "logged-in-sid",
    }
    assert "SECRET-TOKEN" not in caplog.text and "logged-in-sid" not in caplog.text
    assert str(cookies) not in caplog.text


async def test_an_unreadable_cookies_file_is_reported_at_start(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cogs.music")
    missing = tmp_path / "private" / "cookies.txt"
    LocalSearchIE.results["calm"] = ("Calm", world.media.tone(440, 1, "ogg"))
    await world.start(music_ytdlp_cookies=missing)
    assert "MUSIC_YTDLP_COOKIES is set but that file does not exist" in caplog.text
    assert str(missing) not in caplog.text
    assert (await world.slash("play", query="calm")).startswith("▶️ Playing Calm")
    assert LocalSearchIE.seen[0]["sid"] is None
