-- Roleplay characters: each server's own, with the avatar kept as PNG bytes.
CREATE TABLE rp_characters (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER NOT NULL,
    name              TEXT NOT NULL,
    name_key          TEXT NOT NULL,           -- casefolded name: unique per server
    description       TEXT NOT NULL DEFAULT '',
    personality       TEXT NOT NULL DEFAULT '',
    scenario          TEXT NOT NULL DEFAULT '',
    first_message     TEXT NOT NULL DEFAULT '',
    example_dialogue  TEXT NOT NULL DEFAULT '',
    creator_notes     TEXT NOT NULL DEFAULT '',
    creator_id        INTEGER NOT NULL,
    avatar            BLOB,                     -- PNG, re-encoded and bounded; NULL: none
    avatar_channel_id INTEGER,                  -- the bot message that carries the avatar,
    avatar_message_id INTEGER,                  -- so webhooks get a URL Discord can fetch
    avatar_url        TEXT,                     -- its (signed, expiring) attachment URL
    created_at        REAL NOT NULL,            -- unix time
    updated_at        REAL NOT NULL,
    UNIQUE (guild_id, name_key)
);
