"""Hybrid ranking of memories: BM25 keyword search and dense (FAISS) search, fused.

Pure functions: what a memory's keyword row holds (speakers apart from what was said),
the FTS5 query for a question, and how the two searches, the kind of memory and its
age combine into one score. The fusion is linear: cosine similarity plus the BM25
score as a share of the query's best one, weighted. Measured against reciprocal-rank
fusion on both labelled sets (docs/BENCHMARKS.md), it ranked as well or better, and
it keeps a scale on which a mild bonus (fact, newer) only decides near ties.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from dataclasses import dataclass

import Stemmer

DAY = 86_400.0
MAX_NAME_CHARS = 32  # Discord display names are at most 32 characters
MAX_QUERY_TERMS = 24  # a keyword search ORs at most this many words (a long message)
COMMON_SHARE = 0.05  # a term in more of the memories than this is left out of a search
CHEAP_ROWS = 2_000  # ... unless it is in fewer rows than this (~3 ms of scoring)
_WORD = re.compile(r"[^\W_]+")
# Chinese and Japanese write words without spaces: a run of their characters is read as
# its overlapping pairs of characters (猫の名前 → 猫の, の名, 名前), as search engines do,
# so a word of a question is found inside a sentence; a lone character is kept.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_PIECE = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")
_STOPWORDS = (
    "a about all also am an and any are as at be been but by can could did do does doing "
    "for from had has have having he her here hers him his how i if in into is it its "
    "just me my mine myself no not now of on or our ours out so some than that the their "
    "them then there these they this those to too up us very was we were what when where "
    "which who whom why will with would you your yours called named call name remember "
    "know tell said say ever"
)
STOPWORDS = frozenset(_STOPWORDS.split())
_STEMMERS = threading.local()  # a stemmer keeps state while it works: one per thread


@dataclass(frozen=True)
class Weights:
    keyword: float = 0.3  # the best BM25 match adds this much to a cosine similarity
    names: float = 0.5  # BM25 weight of speakers' names, relative to what was said
    fact: float = 0.1  # facts (consolidation, /memory add) over raw conversation
    recency: float = 0.05  # the newest memory gets at most this much more
    half_life_days: float = 365.0
    same_author: float = 0.05  # the asker's own memories
    named: float = 0.2  # what a person the question names said ("what does Maya do?")


def words(text: str) -> list[str]:
    """Content words in order, lower-cased and without accents (as the keyword index's
    tokenizer folds them), without stopwords and one-letter words; Chinese and Japanese
    as pairs of characters."""
    # Lower-cased once in compatibility form (a mathematical bold B has no lower case;
    # as a plain B it has), and a final sigma as the other sigma: FTS5 folds them so,
    # PostgreSQL compares the terms as they are, so both find the same.
    folded = unicodedata.normalize("NFKD", text).lower().replace("\u03c2", "\u03c3")
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    found = _WORD.findall(plain)
    if _HAS_CJK.search(plain):
        found = [piece for word in found for piece in _pieces(word)]
    return [
        word
        for word in found
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit() or _HAS_CJK.match(word))
    ]


def _pieces(word: str) -> list[str]:
    """A word as `words` takes it: its runs of Chinese or Japanese characters as pairs."""
    pieces = []
    for piece in _PIECE.findall(word):
        if _HAS_CJK.match(piece) and len(piece) > 2:
            pieces += [piece[i : i + 2] for i in range(len(piece) - 1)]
        else:
            pieces.append(piece)
    return pieces


def terms(text: str) -> list[str]:
    """Content words in order, stemmed (adopted → adopt, cats → cat): what the keyword
    index holds of a text and what a question is searched with."""
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = Stemmer.Stemmer("english")
    return stemmer.stemWords(words(text))


def keywords(text: str) -> frozenset[str]:
    """A text's distinct `terms`, to compare texts."""
    return frozenset(terms(text))


def split_speakers(text: str) -> tuple[str, str]:
    """(names, body) of a memory's text: the `name: ` each line starts with, apart
    from what was said, so names can weigh less than words in keyword search."""
    names: list[str] = []
    body: list[str] = []
    for line in text.splitlines():
        name, sep, said = line.partition(": ")
        if sep and 0 < len(name) <= MAX_NAME_CHARS:
            if name not in names:
                names.append(name)
            body.append(said)
        else:
            body.append(line)
    return " ".join(names), "\n".join(body)


def speaks(names: frozenset[str], text: str) -> bool:
    """Whether one of a memory's speakers goes by one of `names` (a question's `words`)."""
    return not names.isdisjoint(_speaker_words(text))


@functools.lru_cache(maxsize=4096)  # the same memories are candidates again and again
def _speaker_words(text: str) -> frozenset[str]:
    return frozenset(words(split_speakers(text)[0]))


def indexed_terms(text: str) -> tuple[str, str]:
    """A memory's row in the keyword index: the `terms` of its speakers' names and of
    what was said, apart."""
    names, body = split_speakers(text)
    return " ".join(terms(names)), " ".join(terms(body))


def scope_token(scope_key: str) -> str:
    """A scope as the one token the keyword index holds: `guild:12` → `guild12`."""
    return scope_key.replace(":", "")


def query_terms(query: str) -> list[str]:
    """The distinct terms a question is searched with, at most MAX_QUERY_TERMS."""
    return list(dict.fromkeys(terms(query)))[:MAX_QUERY_TERMS]


def match_expression(scope_key: str, searched: list[str]) -> str:
    """The FTS5 query for any of the `searched` terms, in names or in what was said,
    within a scope."""
    any_term = " OR ".join(f'"{term}"' for term in searched)
    return f"scope : {scope_token(scope_key)} AND {{names body}} : ({any_term})"


def rare_enough(rows_with: dict[str, int], rows: int, share: float) -> list[str]:
    """The terms found in at most `share` of `rows` (or in at most CHEAP_ROWS). A term
    in more of the memories adds little to BM25 but costs a score for each; if every
    term of a question is that common, keywords cannot single anything out and
    meaning alone decides."""
    most = max(share * rows, CHEAP_ROWS)
    return [term for term, count in rows_with.items() if count <= most]


def recency(age_seconds: float, half_life_days: float) -> float:
    """1 for now, 0.5 after one half-life, towards 0 for old memories."""
    return math.pow(0.5, max(age_seconds, 0.0) / (half_life_days * DAY))


def fused(similarity: float, bm25: float, best_bm25: float, weights: Weights) -> float:
    """A memory's cosine similarity to the query plus its BM25 score as a share of the
    best one among the candidates (0 when the keywords did not find it)."""
    return similarity + (weights.keyword * bm25 / best_bm25 if best_bm25 > 0 else 0.0)


def score(
    fusion: float,
    *,
    fact: bool,
    age_seconds: float,
    same_author: bool,
    named: bool,
    weights: Weights,
) -> float:
    """The fused score, raised for facts, for newer memories (mildly: an old memory
    is never buried, but of two that match alike the newer wins), for the asker's own
    and for what a person named in the question said."""
    bonus = (
        (weights.fact if fact else 0.0)
        + weights.recency * recency(age_seconds, weights.half_life_days)
        + (weights.same_author if same_author else 0.0)
        + (weights.named if named else 0.0)
    )
    return fusion * (1.0 + bonus)
