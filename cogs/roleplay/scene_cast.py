"""How a typed or slashed `/scene start` names its cast: a comma-separated list in which
a character's own name may hold commas or a `|`, and typed, the world after a `|`."""

from __future__ import annotations

from utils.text import name_key

MAX_CAST = 6


def split_names(text: str, known: set[str]) -> list[str]:
    """The names of a comma-separated list; a character's name that holds commas
    ("Seraphina, Forest Guardian", as cards are often named) is one name, the longest
    that is a character's taken first."""
    pieces, names, at = text.split(","), [], 0
    most = max((key.count(",") for key in known), default=0)
    while at < len(pieces):
        end = next(
            (
                end
                for end in range(min(len(pieces), at + 1 + most), at + 1, -1)
                if name_key(",".join(pieces[at:end])) in known
            ),
            at + 1,
        )
        names.append(",".join(pieces[at:end]).strip())
        at = end
    return [name for name in names if name_key(name)]  # "Aria, Bren," or an invisible one


def cut_world(text: str, known: set[str]) -> tuple[str, str]:
    """The names and the world of a typed `scene start`: the world follows the last `|`
    before which all are characters' names, so a name may hold a `|` ("Aria|Moon, Bren |
    A port"); else the first `|` (its unknown name is then refused)."""
    bars = [at for at, char in enumerate(text) if char == "|"]
    # Only the bars that the most names could hold come before the world's.
    most = max((key.count("|") for key in known), default=0)
    cuts = [*bars[: MAX_CAST * most + 1], len(text)]

    def all_named(at: int) -> bool:
        return all(name_key(name) in known for name in split_names(text[:at], known))

    fallback = bars[0] if bars else len(text)
    at = next((at for at in reversed(cuts) if all_named(at)), fallback)
    return text[:at], text[at + 1 :]
