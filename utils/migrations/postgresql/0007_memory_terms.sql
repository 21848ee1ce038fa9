-- Keyword search over memories, ranked with BM25 as SQLite's FTS5 ranks its index
-- (utils/memory/keywords.py has the formula). Terms are `utils.memory.scoring.terms` of
-- a memory's speakers' names and of what was said, as in SQLite's `memory_terms`.
-- MemoryStore writes a memory's rows in the same transaction as the memory; deleting
-- the memory deletes them. The statistics BM25 needs (how many of a scope's memories
-- hold a term, how many memories and terms a scope has) are kept by the triggers below,
-- so a search never counts rows. A scope belongs to one process, so only that process
-- writes its statistics.

-- One row per memory: its length in terms, counted as FTS5 counts a row (names, what was
-- said, and the scope token). A memory without a row here has not been indexed yet.
CREATE TABLE memory_lengths (
    memory_id BIGINT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    scope     TEXT NOT NULL,
    tokens    INTEGER NOT NULL
);

-- One row per (memory, term): how often the term is in the names and in what was said,
-- and the memory's length again, so a search reads this index and nothing else.
CREATE TABLE memory_postings (
    memory_id BIGINT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    scope     TEXT NOT NULL,
    term      TEXT NOT NULL,
    in_names  INTEGER NOT NULL,
    in_body   INTEGER NOT NULL,
    tokens    INTEGER NOT NULL,
    PRIMARY KEY (memory_id, term)
);
CREATE INDEX memory_postings_scope_term
    ON memory_postings (scope, term) INCLUDE (memory_id, in_names, in_body, tokens);

-- Per scope: its memories and their lengths summed (BM25's N and average length).
CREATE TABLE memory_scope_terms (
    scope    TEXT PRIMARY KEY,
    memories BIGINT NOT NULL,
    tokens   BIGINT NOT NULL
);

-- Per scope and term: how many of the scope's memories hold the term.
CREATE TABLE memory_term_docs (
    scope    TEXT NOT NULL,
    term     TEXT NOT NULL,
    memories BIGINT NOT NULL,
    PRIMARY KEY (scope, term)
);

-- The triggers run once a statement, on the rows it added and removed (`added`,
-- `removed`): a memory's rows are written by one statement per table.
CREATE FUNCTION memory_scope_terms_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE memory_scope_terms AS t
        SET memories = t.memories - r.memories, tokens = t.tokens - r.tokens
        FROM (SELECT scope, count(*) AS memories, sum(tokens) AS tokens
              FROM removed GROUP BY scope) AS r
        WHERE t.scope = r.scope;
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM memory_scope_terms
        WHERE memories = 0 AND scope IN (SELECT scope FROM removed);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO memory_scope_terms AS t (scope, memories, tokens)
        SELECT scope, count(*), sum(tokens) FROM added GROUP BY scope
        ON CONFLICT (scope) DO UPDATE
        SET memories = t.memories + excluded.memories, tokens = t.tokens + excluded.tokens;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER memory_lengths_added AFTER INSERT ON memory_lengths
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_terms_follow();
CREATE TRIGGER memory_lengths_changed AFTER UPDATE ON memory_lengths
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_terms_follow();
CREATE TRIGGER memory_lengths_removed AFTER DELETE ON memory_lengths
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_terms_follow();

CREATE FUNCTION memory_term_docs_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE memory_term_docs AS d
        SET memories = d.memories - r.memories
        FROM (SELECT scope, term, count(*) AS memories
              FROM removed GROUP BY scope, term) AS r
        WHERE d.scope = r.scope AND d.term = r.term;
        DELETE FROM memory_term_docs AS d
        USING removed AS r
        WHERE d.scope = r.scope AND d.term = r.term AND d.memories = 0;
    ELSE
        INSERT INTO memory_term_docs AS d (scope, term, memories)
        SELECT scope, term, count(*) FROM added GROUP BY scope, term
        ON CONFLICT (scope, term) DO UPDATE SET memories = d.memories + excluded.memories;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER memory_postings_added AFTER INSERT ON memory_postings
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION memory_term_docs_follow();
CREATE TRIGGER memory_postings_removed AFTER DELETE ON memory_postings
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION memory_term_docs_follow();

-- TRUNCATE (also through TRUNCATE memories CASCADE) fires no DELETE triggers.
CREATE FUNCTION memory_keyword_totals_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'memory_lengths' THEN
        DELETE FROM memory_scope_terms;
    ELSE
        DELETE FROM memory_term_docs;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER memory_lengths_truncated AFTER TRUNCATE ON memory_lengths
    FOR EACH STATEMENT EXECUTE FUNCTION memory_keyword_totals_clear();
CREATE TRIGGER memory_postings_truncated AFTER TRUNCATE ON memory_postings
    FOR EACH STATEMENT EXECUTE FUNCTION memory_keyword_totals_clear();
-- Memories stored before this migration (or copied from SQLite) get their rows from
-- MemoryService at start.
