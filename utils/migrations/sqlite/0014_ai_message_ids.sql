-- AI chat: ids of ai_messages are never used twice. Without AUTOINCREMENT, SQLite gives
-- the id of a deleted newest row (a reset, a message deleted in Discord) to the next
-- message, and marks kept by id (summary_upto, memory_consolidation.upto_id,
-- memory_forgotten.upto_id, the turns memory was told to forget) would then cover it.
CREATE TABLE ai_messages_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER,                  -- NULL in DMs
    channel_id  INTEGER NOT NULL,
    message_id  INTEGER,                  -- the Discord message, when there is one
    author_id   INTEGER NOT NULL,
    author_name TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'model')),
    content     TEXT NOT NULL,
    tokens      INTEGER NOT NULL,
    created_at  REAL NOT NULL,            -- unix time
    incomplete  TEXT                      -- see 0005_ai_replies.sql
);
INSERT INTO ai_messages_new (
    id, guild_id, channel_id, message_id, author_id, author_name, role, content, tokens,
    created_at, incomplete
)
SELECT id, guild_id, channel_id, message_id, author_id, author_name, role, content, tokens,
    created_at, incomplete
FROM ai_messages;
-- The next id comes after every mark that may still refer to a deleted message.
DELETE FROM sqlite_sequence WHERE name = 'ai_messages_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'ai_messages_new', max(
    coalesce((SELECT max(id) FROM ai_messages), 0),
    coalesce((SELECT max(summary_upto) FROM ai_channels), 0),
    coalesce((SELECT max(upto_id) FROM memory_consolidation), 0),
    coalesce((SELECT max(upto_id) FROM memory_forgotten), 0)
);
DROP TABLE ai_messages;
ALTER TABLE ai_messages_new RENAME TO ai_messages;
CREATE INDEX ai_messages_channel ON ai_messages (channel_id, id);
CREATE INDEX ai_messages_writing ON ai_messages (id) WHERE incomplete = 'interrupted';
