-- Which tool families a server turned on or off (NULL: the defaults), and what tools did.
ALTER TABLE ai_guilds ADD COLUMN tools TEXT;

CREATE TABLE ai_tool_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,            -- who asked
    tool       TEXT NOT NULL,
    arguments  TEXT NOT NULL,               -- JSON, cut to 500 characters
    result     TEXT NOT NULL,
    ok         INTEGER NOT NULL,
    created_at REAL NOT NULL                -- unix time
);
CREATE INDEX ai_tool_actions_guild ON ai_tool_actions (guild_id, id);
