"""yt-dlp's ``extractor_args`` as MUSIC_YTDLP_EXTRACTOR_ARGS gives them (a PO token for
YouTube's bot check, see :mod:`cogs.music.youtube`): parsed here for the music cog, and
checked by :mod:`config` at start-up so a malformed value stops it with one clear line.
The value may carry a token: errors never repeat it.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import AfterValidator, SecretStr

ExtractorArgs = dict[str, dict[str, list[str]]]


def parse_extractor_args(setting: SecretStr | None) -> ExtractorArgs:
    """yt-dlp's ``extractor_args`` from MUSIC_YTDLP_EXTRACTOR_ARGS: a JSON mapping or
    yt-dlp's command-line form (``youtube:player_client=web,mweb;po_token=TOKEN``,
    several separated by spaces).  ValueError says what is wrong, never the value."""
    return _parse(setting.get_secret_value().strip() if setting is not None else "")


def _checked(setting: SecretStr | None) -> SecretStr | None:
    parse_extractor_args(setting)
    return setting


ExtractorArgsSetting = Annotated[SecretStr | None, AfterValidator(_checked)]
"""The setting's type in :class:`config.Settings`: a value that does not parse stops the
start with one line naming the setting."""


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
