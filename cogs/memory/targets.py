"""Which memory a `/memory forget` or the forget tool means: a number, or all."""

from __future__ import annotations

import re

from utils.errors import BotError

# ASCII digits only (str.isdigit takes "²", which int() refuses), and no more than
# the signed 64-bit ids SQLite and PostgreSQL (BIGINT) store.
_MEMORY_NUMBER = re.compile(r"[0-9]{1,19}")
_LARGEST_ID = 2**63 - 1


def parse_target(target: str) -> int | None:
    """A memory number (`12`, `#12`), or None for `all`."""
    value = target.strip().lower().removeprefix("#")
    if value == "all":
        return None
    if _MEMORY_NUMBER.fullmatch(value) and int(value) <= _LARGEST_ID:
        return int(value)
    raise BotError("Say which memory to forget: its number from `/memory show`, or `all`.")
