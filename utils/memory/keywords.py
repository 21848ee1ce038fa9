"""A memory's keyword rows and the BM25 search over them: one class per backend, chosen
by `keyword_index` from `db.backend`; `MemoryStore` is their only user.

SQLite ranks its FTS5 index (`memory_terms`) with `bm25()`. PostgreSQL keeps postings
tables (migration 0007) and scores them here with the same formula, FTS5's:

    score = sum over the terms of  idf · f · (K1 + 1) / (f + K1 · (1 - B + B · D / avgD))

where f is how often the term is in the memory (in the speakers' names weighted by
`names_weight`), D the memory's length in terms and avgD the mean length;
idf = ln((N - n + 0.5) / (n + 0.5)) of N memories of which n hold the term, and a tiny
positive value where that is not above 0 (a term in over half of them). Both leave out
terms in more than COMMON_SHARE of the memories (`scoring.rare_enough`).

One difference: FTS5 counts N, n and avgD over every scope; PostgreSQL over the scope
searched. A guild's question is ranked within that guild's memories, and the counts
(kept by triggers, so a search counts nothing) are rows of the scope, which only the
process that owns it writes: no row that every process would write. With a single
scope the two give the same scores.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence

from utils.db import Connection, Database
from utils.memory.records import Scope
from utils.memory.scoring import COMMON_SHARE, match_expression, rare_enough, scope_token

K1 = 1.2
B = 0.75
MIN_IDF = 1e-6
COUNTS_KEPT = 50_000  # terms whose counts SQLite's searches reuse
COUNTS_SECONDS = 60.0  # ... for this long

Fields = tuple[str, str]  # a memory's (names, body) terms: `scoring.indexed_terms`
KeywordRow = tuple[int, Scope, Fields]  # (memory id, its scope, its terms)


def idf(memories: int, holding: int) -> float:
    """How rare a term held by `holding` of `memories` is, as FTS5 computes it."""
    value = math.log((memories - holding + 0.5) / (holding + 0.5))
    return value if value > 0 else MIN_IDF


class KeywordIndex(ABC):
    def __init__(self, db: Database) -> None:
        self.db = db

    @abstractmethod
    async def write(self, conn: Connection, rows: Sequence[KeywordRow]) -> None:
        """(Re)write memories' rows, in the transaction that writes the memories."""

    @abstractmethod
    def written(self, rows: Sequence[KeywordRow]) -> None:
        """Called once the transaction that wrote `rows` has committed."""

    @abstractmethod
    async def search(
        self, scope: Scope, searched: Sequence[str], limit: int, *, names_weight: float
    ) -> list[tuple[int, float]]:
        """(id, score) of the scope's memories holding any of the terms, best first."""

    @abstractmethod
    async def unindexed(self, after: int, limit: int) -> list[int]:
        """Ids after `after`, in order, of memories that have no rows yet (stored before
        the keyword index, copied from another database, or folded anew: migration 0024)."""


class Fts5Index(KeywordIndex):
    """SQLite: one FTS5 row per memory (rowid = memory id); a trigger deletes it.

    FTS5 counts the memories holding a term by walking the term's rows, and finds a
    term absent by walking every segment, so what searches learn is kept for
    COUNTS_SECONDS (at most COUNTS_KEPT terms each): the counts of terms found, and the
    terms no memory holds. An absent term is forgotten as soon as a memory holding it
    is written (`written`), so it is searched for from then on. A count kept may be
    off until it expires (memories written or deleted since); it only decides whether
    a term is too common to score (`scoring.rare_enough`): BM25 itself is FTS5's, on
    the rows as they are.
    """

    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(db)
        self.clock = clock
        self._counts: dict[str, int] = {}  # term -> memories holding it
        self._absent: set[str] = set()  # terms no memory held
        self._memories = 0  # the memories counted (the highest id, as FTS5 counts rows)
        self._counted_at = -math.inf
        self._writes = 0  # writes committed: a search that overlaps one learns no absence

    async def write(self, conn: Connection, rows: Sequence[KeywordRow]) -> None:
        await conn.executemany(
            "INSERT OR REPLACE INTO memory_terms (rowid, scope, names, body) VALUES (?, ?, ?, ?)",
            [(memory_id, scope_token(scope.key), *fields) for memory_id, scope, fields in rows],
        )

    def written(self, rows: Sequence[KeywordRow]) -> None:
        self._writes += 1
        for _, _, (names, body) in rows:
            self._absent.difference_update(names.split(), body.split())

    async def search(
        self, scope: Scope, searched: Sequence[str], limit: int, *, names_weight: float
    ) -> list[tuple[int, float]]:
        rare = rare_enough(await self._counted(searched), self._memories, COMMON_SHARE)
        if not rare:
            return []
        rows = await self.db.fetchall(
            "SELECT rowid, bm25(memory_terms, 0.0, ?, 1.0) AS score FROM memory_terms "
            # Ties go to the newest, as on PostgreSQL: both keep the same ones at the limit.
            "WHERE memory_terms MATCH ? ORDER BY score, rowid DESC LIMIT ?",
            (names_weight, match_expression(scope.key, rare), limit),
        )
        return [(row[0], -row[1]) for row in rows]  # FTS5's bm25() is lower for better

    async def _counted(self, terms: Sequence[str]) -> dict[str, int]:
        """How many memories hold each of `terms` that some memory holds; read for
        those neither kept nor known absent (all of them once what is kept expires)."""
        now = self.clock()
        if now - self._counted_at > COUNTS_SECONDS or len(self._counts) > COUNTS_KEPT:
            self._counts.clear()
            self._absent.clear()
            self._counted_at = now
        kept = {term: self._counts[term] for term in terms if term in self._counts}
        missing = [
            term for term in dict.fromkeys(terms) if term not in kept and term not in self._absent
        ]
        if missing:
            writes = self._writes
            rows = await self.db.fetchall(
                "SELECT term, doc, (SELECT coalesce(max(id), 0) FROM memories) "
                f"FROM memory_terms_vocab WHERE term IN ({','.join('?' * len(missing))})",
                missing,
            )
            if rows:
                self._memories = rows[0][2]
            read = {row[0]: row[1] for row in rows}
            self._counts.update(read)
            kept.update(read)
            if writes == self._writes and len(self._absent) < COUNTS_KEPT:
                self._absent.update(term for term in missing if term not in read)
        return kept

    async def unindexed(self, after: int, limit: int) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT m.id FROM memories m LEFT JOIN memory_terms t ON t.rowid = m.id "
            "WHERE m.id > ? AND t.rowid IS NULL ORDER BY m.id LIMIT ?",
            (after, limit),
        )
        return [row[0] for row in rows]


class PostingsIndex(KeywordIndex):
    """PostgreSQL: a row per (memory, term) and a length per memory, deleted with the
    memory (ON DELETE CASCADE); triggers keep the counts (migration 0007)."""

    async def write(self, conn: Connection, rows: Sequence[KeywordRow]) -> None:
        if not rows:
            return
        postings: list[tuple[int, str, str, int, int, int]] = []
        lengths: list[tuple[int, str, int]] = []
        for memory_id, scope, (names, body) in rows:
            in_names, in_body = Counter(names.split()), Counter(body.split())
            # FTS5's length of a row counts the scope column's one token too.
            tokens = in_names.total() + in_body.total() + 1
            lengths.append((memory_id, scope.key, tokens))
            postings += [
                (memory_id, scope.key, term, in_names[term], in_body[term], tokens)
                for term in sorted(in_names.keys() | in_body.keys())
            ]
        await conn.execute(
            "DELETE FROM memory_postings WHERE memory_id = ANY(?::bigint[])",
            ([memory_id for memory_id, _, _ in rows],),
        )
        await conn.execute(
            "INSERT INTO memory_postings (memory_id, scope, term, in_names, in_body, tokens) "
            "SELECT * FROM unnest(?::bigint[], ?::text[], ?::text[], ?::int[], ?::int[], ?::int[])",
            _columns(postings, 6),
        )
        await conn.execute(
            "INSERT INTO memory_lengths (memory_id, scope, tokens) "
            "SELECT * FROM unnest(?::bigint[], ?::text[], ?::int[]) "
            "ON CONFLICT (memory_id) DO UPDATE SET tokens = excluded.tokens",
            _columns(lengths, 3),
        )

    def written(self, rows: Sequence[KeywordRow]) -> None:
        """Nothing is kept here: the counts are rows, which triggers keep."""

    async def search(
        self, scope: Scope, searched: Sequence[str], limit: int, *, names_weight: float
    ) -> list[tuple[int, float]]:
        counts = await self.db.fetchall(
            "SELECT d.term, d.memories, s.memories, s.tokens "
            "FROM memory_term_docs d JOIN memory_scope_terms s ON s.scope = d.scope "
            "WHERE d.scope = ? AND d.term = ANY(?::text[])",
            (scope.key, list(searched)),
        )
        if not counts:
            return []
        holding = {row[0]: row[1] for row in counts}
        memories, tokens = counts[0][2], counts[0][3]
        rare = rare_enough(holding, memories, COMMON_SHARE)
        if not rare:
            return []
        rows = await self.db.fetchall(
            "WITH hits AS ("
            "  SELECT p.memory_id, p.tokens, q.idf, p.in_names * ?::float8 + p.in_body AS f"
            "  FROM unnest(?::text[], ?::float8[]) AS q (term, idf)"
            "  JOIN memory_postings p ON p.scope = ? AND p.term = q.term) "
            f"SELECT memory_id, sum(idf * f * {K1 + 1} "
            f"  / (f + {K1} * ({1 - B} + {B} * tokens / ?::float8))) AS score "
            "FROM hits GROUP BY memory_id ORDER BY score DESC, memory_id DESC LIMIT ?",
            (
                names_weight,
                rare,
                [idf(memories, holding[term]) for term in rare],
                scope.key,
                tokens / memories,
                limit,
            ),
        )
        return [(row[0], row[1]) for row in rows]

    async def unindexed(self, after: int, limit: int) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT m.id FROM memories m LEFT JOIN memory_lengths l ON l.memory_id = m.id "
            "WHERE m.id > ? AND l.memory_id IS NULL ORDER BY m.id LIMIT ?",
            (after, limit),
        )
        return [row[0] for row in rows]


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows as `width` lists, one a column (arrays for `unnest`)."""
    return [[row[n] for row in rows] for n in range(width)]


def keyword_index(db: Database) -> KeywordIndex:
    """The keyword index of the database's backend."""
    return PostingsIndex(db) if db.backend == "postgresql" else Fts5Index(db)
