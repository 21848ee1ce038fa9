-- Keyword search over memories: an FTS5 index ranked with BM25, one row per memory
-- (rowid = memories.id). `scope` holds the scope as one token ('guild123'), so a search
-- never leaves its scope; `names` the speakers, apart from `body` (what was said), so a
-- name that starts every line of a chunk can be weighted down. Both hold the memory's
-- terms as `utils.memory.scoring.terms` makes them (content words, stemmed),
-- so a question's terms can be looked up in `memory_terms_vocab` as they are. MemoryStore
-- writes rows in the same transaction as their memory; deleting a memory deletes its
-- row here.
CREATE VIRTUAL TABLE memory_terms USING fts5(
    scope, names, body, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE memory_terms_vocab USING fts5vocab(memory_terms, row);

CREATE TRIGGER memories_delete_terms AFTER DELETE ON memories BEGIN
    DELETE FROM memory_terms WHERE rowid = old.id;
END;
-- Memories stored before this migration get their rows from MemoryService at start.
