"""Character names: how two names compare, and the one name no character may take."""

from __future__ import annotations

import unicodedata

NARRATOR = "Narrator"
"""The speaker of a scene's narration (the bot itself), so no character's name."""


def name_key(name: str) -> str:
    """How names compare: compatibility-normalised (NFKC), casefolded, without format
    characters (zero-width spaces and the like), whitespace collapsed. "Zoë" typed and
    "Zoë" decomposed in a card are one name; so are "Aria" and "Aria" + U+200B."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cf").split())
