-- Keyword search over memories: an FTS5 index ranked with BM25, one row per memory
-- (rowid = memories.id). `scope` holds the scope as one token ('guild123'), so a search
-- never leaves its scope; `names` the speakers, apart from `body` (what was said), so a
-- name that starts every line of a chunk can be weighted down. MemoryStore writes rows
-- in the same transaction as their memory; deleting a memory deletes its row here.
CREATE VIRTUAL TABLE memory_terms USING fts5(
    scope, names, body, tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER memories_delete_terms AFTER DELETE ON memories BEGIN
    DELETE FROM memory_terms WHERE rowid = old.id;
END;

-- Memories stored before this migration: speakers' names stay in the text.
INSERT INTO memory_terms (rowid, scope, names, body)
SELECT id, replace(scope, ':', ''), author_name, text FROM memories;
