"""YouTube's sign-in wall and the settings that get past it: detection, parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yt_dlp.utils
from pydantic import SecretStr, ValidationError

from cogs.music.sources import Resolver, user_error
from cogs.music.urls import AddressPolicy
from cogs.music.youtube import BotCheck, is_bot_check
from config import Settings, describe_error
from utils.ytdlp_args import parse_extractor_args


@pytest.mark.parametrize(
    "message",
    [
        "ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser",
        "ERROR: [youtube] abc: Sign in to confirm you're not a bot",
        "ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate",
        "WARNING: [youtube] abc: This format requires a GVS PO Token which was not provided",
    ],
)
def test_the_sign_in_wall_is_recognised(message: str) -> None:
    assert is_bot_check(message)
    assert isinstance(user_error(yt_dlp.utils.DownloadError(message)), BotCheck)


def test_a_private_video_is_not_taken_for_the_bot_check() -> None:
    """yt-dlp ends every sign-in reason with its cookies hint; a private video's (in a
    playlist, say) is not the wall, and the owner is not told to fix it with cookies."""
    message = (
        "ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this "
        "video. Use --cookies-from-browser or --cookies for the authentication. See  "
        "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how "
        "to manually pass cookies"
    )
    assert not is_bot_check(message)
    assert str(user_error(yt_dlp.utils.DownloadError(message))) == "I couldn't load that link."


def test_other_failures_are_not_the_bot_check() -> None:
    assert not is_bot_check("ERROR: [generic] Unsupported URL: https://x.example/")
    assert not isinstance(user_error(yt_dlp.utils.DownloadError("HTTP Error 404")), BotCheck)


def test_extractor_args_in_the_command_line_form() -> None:
    parsed = parse_extractor_args(
        SecretStr("youtube:player_client=web,mweb;po-token=web.gvs+T\\,1 youtubetab:skip=webpage")
    )
    assert parsed == {
        "youtube": {"player_client": ["web", "mweb"], "po_token": ["web.gvs+T,1"]},
        "youtubetab": {"skip": ["webpage"]},
    }


def test_extractor_args_as_json() -> None:
    text = '{"youtube": {"player_client": ["web"], "po_token": "web.gvs+T"}}'
    assert parse_extractor_args(SecretStr(text)) == {
        "youtube": {"player_client": ["web"], "po_token": ["web.gvs+T"]}
    }
    assert parse_extractor_args(None) == {} and parse_extractor_args(SecretStr(" ")) == {}


@pytest.mark.parametrize("text", ["youtube", "{not json", "[1, 2]", '{"youtube": 3}', "yt:=x"])
def test_bad_extractor_args_stop_the_start_naming_the_setting_not_the_value(text: str) -> None:
    """Checked with the other settings: not when the music cog loads, which would fail
    with a traceback and leave the bot running without /play."""
    with pytest.raises(ValidationError) as caught:
        Settings(**{"_env_file": None, "discord_token": "t", "music_ytdlp_extractor_args": text})
    line = describe_error(caught.value)
    assert line.startswith("Configuration error: MUSIC_YTDLP_EXTRACTOR_ARGS: ")
    assert text not in line.removeprefix("Configuration error: MUSIC_YTDLP_EXTRACTOR_ARGS: ")


async def test_the_resolver_gives_yt_dlp_the_cookies_file_and_the_extractor_args(
    tmp_path: Path,
) -> None:
    cookies = tmp_path / "cookies.txt"
    args = {"youtube": {"po_token": ["web.gvs+T"]}}
    policy = AddressPolicy()
    with_them = Resolver(
        search_prefix="ytsearch",
        timeout=5,
        policy=policy,
        ffprobe="ffprobe",
        cookies=cookies,
        extractor_args=args,
    )
    plain = Resolver(search_prefix="ytsearch", timeout=5, policy=policy, ffprobe="ffprobe")
    for resolver in (with_them, plain):
        await resolver.start()  # the options name its egress proxy
    try:
        options = with_them.options()
        assert options.get("cookiefile") == str(cookies)
        assert options.get("extractor_args") == args
        assert "cookiefile" not in plain.options() and "extractor_args" not in plain.options()
    finally:
        for resolver in (with_them, plain):
            await resolver.close()
