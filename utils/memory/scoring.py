"""Hybrid ranking of recalled memories: semantic similarity + keyword match + recency.

FAISS finds the nearest candidates by meaning; these pure functions re-rank them
so that exact names and words in the query count, newer memories win ties, and
memories about the person asking get a small nudge.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DAY = 86_400.0
_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = (
    "a about all also am an and any are as at be been but by can could did do does doing "
    "for from had has have having he her here hers him his how i if in into is it its "
    "just me my mine myself no not now of on or our ours out so some than that the their "
    "them then there these they this those to too up us very was we were what when where "
    "which who whom why will with would you your yours called named call name remember "
    "know tell said say"
)
STOPWORDS = frozenset(_STOPWORDS.split())


@dataclass(frozen=True)
class Weights:
    semantic: float = 1.0
    keyword: float = 0.3
    recency: float = 0.1
    same_author: float = 0.05
    half_life_days: float = 30.0


def keywords(text: str) -> frozenset[str]:
    """Content words, lower-cased, with a plural `s` dropped (cats → cat)."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS or (len(word) < 3 and not word.isdigit()):
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return frozenset(words)


def keyword_match(query: frozenset[str], text: frozenset[str]) -> float:
    """The share of the query's content words that the memory contains."""
    return len(query & text) / len(query) if query else 0.0


def recency(age_seconds: float, half_life_days: float) -> float:
    """1 for now, 0.5 after one half-life, towards 0 for old memories."""
    return math.pow(0.5, max(age_seconds, 0.0) / (half_life_days * DAY))


def score(
    similarity: float, keyword: float, age_seconds: float, same_author: bool, weights: Weights
) -> float:
    return (
        weights.semantic * similarity
        + weights.keyword * keyword
        + weights.recency * recency(age_seconds, weights.half_life_days)
        + (weights.same_author if same_author else 0.0)
    )


def relevant(similarity: float, keyword: float, min_similarity: float) -> bool:
    """Worth putting in front of the model: close in meaning, or most query words shared."""
    return similarity >= min_similarity or keyword >= 0.5
