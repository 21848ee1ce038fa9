"""Personas: Markdown files whose text becomes the model's system instruction.

A persona file is `data/personas/<name>.md`: a `# Title` line, a one-line
description, then the instructions. Files in `DATA_DIR/personas/` add to or
override the shipped ones.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from utils.text import truncate

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "personas"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
TITLE_CHARS = 100
DESCRIPTION_CHARS = 200
# The prompt goes with every request: a file past this is a mistake (a log, a book), and
# would cost its whole size in tokens each time.
MAX_PERSONA_BYTES = 32_000


@dataclass(frozen=True)
class Persona:
    name: str
    title: str
    description: str
    prompt: str


def parse_persona(name: str, text: str) -> Persona:
    lines = text.strip().splitlines()
    title = name.title()
    if lines and lines[0].startswith("# "):
        # A `# ` line without a title keeps the file's name: Discord refuses empty names.
        title = lines.pop(0)[2:].strip() or title
    body = "\n".join(lines).strip()
    description = next((line.strip() for line in body.splitlines() if line.strip()), "")
    # Shown in lists and replies: a persona whose first line is its whole prompt must fit.
    return Persona(
        name=name,
        title=truncate(title, TITLE_CHARS),
        description=truncate(description, DESCRIPTION_CHARS),
        prompt=body,
    )


def load_personas(*directories: Path, default: str = "default") -> dict[str, Persona]:
    """Read every `*.md` persona; later directories override earlier ones (blocking). A
    `default` (AI_DEFAULT_PERSONA) no file is named for gets one warning: channels then
    talk with the fallback of `choose_persona`."""
    personas: dict[str, Persona] = {}
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.md")):
            name = path.stem.lower()
            if not _NAME.match(name):
                log.warning("skipping persona %s: names are a-z, 0-9, - and _", path)
                continue
            text = _read(path)
            if text is not None:
                personas[name] = parse_persona(name, text)
    if personas and default not in personas:
        fallback = choose_persona(personas, None, default).name
        log.warning("AI_DEFAULT_PERSONA %r has no persona file; using %r", default, fallback)
    return personas


def _read(path: Path) -> str | None:
    """The text of a persona file, or None (and one log line) if it cannot be one: one bad
    file of an operator's costs that persona, not the AI cog."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PERSONA_BYTES + 1)
    except OSError as error:  # unreadable, a directory named *.md, a dangling link
        log.warning("skipping persona %s: %s", path, error.strerror or type(error).__name__)
        return None
    if len(data) > MAX_PERSONA_BYTES:
        log.warning("skipping persona %s: larger than %d bytes", path, MAX_PERSONA_BYTES)
        return None
    try:
        return data.decode("utf-8-sig")  # Notepad may start it with a byte-order mark
    except UnicodeDecodeError:
        log.warning("skipping persona %s: not UTF-8 text; save it as UTF-8", path)
        return None


def choose_persona(personas: dict[str, Persona], name: str | None, default: str) -> Persona:
    """The persona a channel talks with: its own if it still exists, else the bot's
    default, else the shipped `default`, else any."""
    for candidate in (name, default, "default"):
        if candidate in personas:
            return personas[candidate]
    return next(iter(personas.values()))
