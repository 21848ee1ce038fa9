-- Per-guild settings the admin cog manages.
CREATE TABLE guild_settings (
    guild_id   BIGINT PRIMARY KEY,
    prefix     TEXT,
    updated_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);
