"""YouTube's sign-in wall ("Sign in to confirm you're not a bot") and the two settings
that get past it: a cookies file and extra yt-dlp extractor arguments (a PO token).

YouTube asks some server addresses to sign in before it serves anything.  yt-dlp
then fails every extraction; users get one plain line, the owner a log line that
says what to do.  Neither setting is ever logged: cookies are a login, and
extractor arguments may carry a token.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from pydantic import SecretStr

from cogs.music.errors import MusicError

log = logging.getLogger(__name__)

ExtractorArgs = dict[str, dict[str, list[str]]]

# The wall's own words, not yt-dlp's `--cookies` hint: that one also ends the errors of
# videos no login of the bot's would open (a private one: "Sign in if you've been granted
# access").
_SIGN_IN = re.compile(
    r"sign in to confirm|confirm you(?:'|’| a)re not a bot|po[ _-]?token", re.IGNORECASE
)
OWNER_HINT = (
    "YouTube asked this bot to sign in (its bot check): give yt-dlp the cookies of a "
    "YouTube login (MUSIC_YTDLP_COOKIES, a Netscape cookies file) and/or a PO token "
    "(MUSIC_YTDLP_EXTRACTOR_ARGS); see README, Music, 'YouTube's bot check'"
)


class BotCheck(MusicError):
    """YouTube wants a signed-in (or token-carrying) client before it serves a video."""

    def __init__(self) -> None:
        super().__init__(
            "YouTube is asking this bot to prove it isn't a bot; the owner has been told "
            "how to fix it."
        )


def is_bot_check(message: str) -> bool:
    """True if a yt-dlp error is YouTube's sign-in wall (bot check, PO token, age)."""
    return _SIGN_IN.search(message) is not None


def bot_check() -> BotCheck:
    """The user's error; logs the owner's instructions once per occurrence."""
    log.warning(OWNER_HINT)
    return BotCheck()


def readable_cookies(path: Path | None) -> Path | None:
    """The cookies file if it can be read; otherwise None, with a clear log line (the
    path is not logged: it may name the owner's account)."""
    if path is None:
        return None
    if not path.is_file() or not os.access(path, os.R_OK):
        log.error(
            "MUSIC_YTDLP_COOKIES is set but that file does not exist or cannot be read; "
            "YouTube links go without cookies until it is fixed"
        )
        return None
    if not os.access(path, os.W_OK):
        log.warning(
            "MUSIC_YTDLP_COOKIES is read-only: yt-dlp cannot store YouTube's refreshed "
            "cookies in it, so the login may expire sooner"
        )
    return path


def parse_extractor_args(setting: SecretStr | None) -> ExtractorArgs:
    """yt-dlp's ``extractor_args`` from MUSIC_YTDLP_EXTRACTOR_ARGS: a JSON mapping or
    yt-dlp's command-line form (``youtube:player_client=web,mweb;po_token=TOKEN``,
    several separated by spaces).  ValueError names the problem, never the value."""
    text = setting.get_secret_value().strip() if setting is not None else ""
    try:
        return _parse(text)
    except ValueError as error:
        raise ValueError(f"MUSIC_YTDLP_EXTRACTOR_ARGS: {error}") from None


def _parse(text: str) -> ExtractorArgs:
    if not text:
        return {}
    if text.startswith("{"):
        return _from_json(text)
    parsed: ExtractorArgs = {}
    for part in text.split():
        extractor, colon, arguments = part.partition(":")
        if not colon or not extractor or not arguments:
            raise ValueError("each entry must look like extractor:key=value;key=value")
        values = parsed.setdefault(extractor.lower(), {})
        for argument in arguments.split(";"):
            key, _, value = argument.partition("=")
            if not key.strip():
                raise ValueError("an argument has no name")
            values[key.strip().lower().replace("-", "_")] = [
                item.replace(r"\,", ",").strip() for item in re.split(r"(?<!\\),", value)
            ]
    return parsed


def _from_json(text: str) -> ExtractorArgs:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("it is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON must be a mapping of extractor to arguments")
    parsed: ExtractorArgs = {}
    for extractor, arguments in data.items():
        if not isinstance(arguments, dict):
            raise ValueError("each extractor's arguments must be a mapping")
        parsed[str(extractor).lower()] = {
            str(key): [str(v) for v in value] if isinstance(value, list) else [str(value)]
            for key, value in arguments.items()
        }
    return parsed
