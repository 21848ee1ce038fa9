"""YouTube's sign-in wall ("Sign in to confirm you're not a bot") and the two settings
that get past it: a cookies file and extra yt-dlp extractor arguments (a PO token).

YouTube asks some server addresses to sign in before it serves anything.  yt-dlp
then fails every extraction; users get one plain line, the owner a log line that
says what to do.  Neither setting is ever logged: cookies are a login, and
extractor arguments may carry a token.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from cogs.music.errors import MusicError

log = logging.getLogger(__name__)

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
