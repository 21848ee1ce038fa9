-- Keyword search over memories, ranked with BM25 as SQLite's FTS5 ranks its index
-- (utils/memory/keywords.py has the formula). Terms are `utils.memory.scoring.terms` of
-- a memory's speakers' names and of what was said, as in SQLite's `memory_terms`.
-- MemoryStore writes a memory's rows in the same transaction as the memory; deleting
-- the memory deletes them.

-- One row per (memory, term): how often the term is in the names and in what was said.
-- A search reads the rows of its scope and terms from the index alone.
CREATE TABLE memory_postings (
    memory_id BIGINT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    scope     TEXT NOT NULL,
    term      TEXT NOT NULL,
    in_names  INTEGER NOT NULL,
    in_body   INTEGER NOT NULL,
    PRIMARY KEY (memory_id, term)
);
CREATE INDEX memory_postings_scope_term
    ON memory_postings (scope, term) INCLUDE (memory_id, in_names, in_body);

-- One row per memory: its length in terms, counted as FTS5 counts a row (names, what was
-- said, and the scope token). A memory without a row here has not been indexed yet.
CREATE TABLE memory_lengths (
    memory_id BIGINT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    scope     TEXT NOT NULL,
    tokens    INTEGER NOT NULL
);

-- Per scope: how many memories are indexed and their lengths summed (BM25's N and
-- average length), kept by the triggers below so a search never counts a whole scope.
-- A scope belongs to one process, so only that process writes its row.
CREATE TABLE memory_scope_terms (
    scope    TEXT PRIMARY KEY,
    memories BIGINT NOT NULL,
    tokens   BIGINT NOT NULL
);

CREATE FUNCTION memory_scope_terms_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE memory_scope_terms
        SET memories = memories - 1, tokens = tokens - OLD.tokens
        WHERE scope = OLD.scope;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO memory_scope_terms AS totals (scope, memories, tokens)
        VALUES (NEW.scope, 1, NEW.tokens)
        ON CONFLICT (scope) DO UPDATE
        SET memories = totals.memories + 1, tokens = totals.tokens + NEW.tokens;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER memory_lengths_totals AFTER INSERT OR UPDATE OR DELETE ON memory_lengths
    FOR EACH ROW EXECUTE FUNCTION memory_scope_terms_follow();

CREATE FUNCTION memory_scope_terms_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memory_scope_terms;
    RETURN NULL;
END
$$;

-- TRUNCATE (also through TRUNCATE memories CASCADE) fires no row triggers.
CREATE TRIGGER memory_lengths_truncate AFTER TRUNCATE ON memory_lengths
    FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_terms_clear();
-- Memories stored before this migration (or copied from SQLite) get their rows from
-- MemoryService at start.
