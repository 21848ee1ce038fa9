-- Data of deleted channels and of guilds that removed the bot, deleted when the grace ends.
CREATE TABLE pending_deletions (
    kind      TEXT NOT NULL CHECK (kind IN ('channel', 'guild')),
    target_id BIGINT NOT NULL,           -- the channel (or thread) id, or the guild id
    guild_id  BIGINT,                    -- a channel's guild
    due_at    DOUBLE PRECISION NOT NULL,              -- unix time
    PRIMARY KEY (kind, target_id)
);
