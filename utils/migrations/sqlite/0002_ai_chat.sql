-- AI chat: per-channel conversation, channel and guild preferences, token usage.
CREATE TABLE ai_messages (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER,                  -- NULL in DMs
    channel_id  INTEGER NOT NULL,
    message_id  INTEGER,                  -- the Discord message, when there is one
    author_id   INTEGER NOT NULL,
    author_name TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'model')),
    content     TEXT NOT NULL,
    tokens      INTEGER NOT NULL,
    created_at  REAL NOT NULL             -- unix time
);
CREATE INDEX ai_messages_channel ON ai_messages (channel_id, id);

CREATE TABLE ai_channels (
    channel_id    INTEGER PRIMARY KEY,
    guild_id      INTEGER,
    persona       TEXT,
    system_prompt TEXT,
    autorespond   INTEGER NOT NULL DEFAULT 0,
    summary       TEXT,
    summary_upto  INTEGER NOT NULL DEFAULT 0  -- ai_messages.id covered by the summary
);

CREATE TABLE ai_guilds (
    guild_id INTEGER PRIMARY KEY,
    model    TEXT
);

CREATE TABLE ai_usage (
    guild_id      INTEGER NOT NULL,           -- 0 for DMs
    day           TEXT NOT NULL,              -- UTC date, YYYY-MM-DD
    requests      INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, day)
);
