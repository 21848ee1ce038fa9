-- Long-term memory. This table is the source of truth; the FAISS index files under
-- DATA_DIR/memory/ are derived from it and rebuilt from it when needed.
CREATE TABLE memories (
    id          INTEGER PRIMARY KEY,
    scope       TEXT NOT NULL,              -- 'guild:<guild id>' or 'dm:<user id>'
    author_id   INTEGER NOT NULL,           -- the person it is about (a chunk: who spoke)
    author_name TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('conversation', 'consolidation', 'user')),
    text        TEXT NOT NULL,
    channel_id  INTEGER,                    -- conversation chunks: where it was said
    turns       INTEGER NOT NULL DEFAULT 0, -- conversation chunks: messages so far
    created_at  REAL NOT NULL,              -- unix time; a chunk: its latest message
    model       TEXT NOT NULL,              -- the embedding model that made `vector`
    vector      BLOB NOT NULL               -- float32, unit length
);
CREATE INDEX memories_scope_author ON memories (scope, author_id, id);
CREATE INDEX memories_chunks ON memories (channel_id, id) WHERE source = 'conversation';
CREATE INDEX memories_model_scope ON memories (model, scope);  -- per-scope loads, model changes

-- Consolidation: the last ai_messages.id of each channel already read for facts.
CREATE TABLE memory_consolidation (
    channel_id INTEGER PRIMARY KEY,
    upto_id    INTEGER NOT NULL
);
