-- Per-guild settings the admin cog manages.
CREATE TABLE guild_settings (
    guild_id   INTEGER PRIMARY KEY,
    prefix     TEXT,
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);
