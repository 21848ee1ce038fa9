-- Keyword search over memories, ranked with BM25 like SQLite's FTS5 index: one row per
-- (memory, term) with how often the term occurs in the speakers' names and in what was
-- said, each memory's lengths, and how many memories hold each term (for its rarity).
-- Terms are `utils.memory.scoring.terms` of the memory. MemoryStore writes them in the
-- same transaction as their memory; deleting a memory deletes its rows.
CREATE TABLE memory_postings (
    memory_id BIGINT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    scope     TEXT NOT NULL,
    term      TEXT NOT NULL,
    in_names  INTEGER NOT NULL,
    in_body   INTEGER NOT NULL,
    PRIMARY KEY (memory_id, term)
);
CREATE INDEX memory_postings_scope_term ON memory_postings (scope, term);

CREATE TABLE memory_lengths (
    memory_id BIGINT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    scope     TEXT NOT NULL,
    names_len INTEGER NOT NULL,
    body_len  INTEGER NOT NULL
);
CREATE INDEX memory_lengths_scope ON memory_lengths (scope);
