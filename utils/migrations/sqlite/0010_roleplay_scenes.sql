-- Roleplay scenes: one per channel or thread, with what its story established.
CREATE TABLE rp_scenes (
    channel_id  INTEGER PRIMARY KEY,   -- the channel or thread the scene plays in
    guild_id    INTEGER NOT NULL,
    owner_id    INTEGER NOT NULL,      -- who started it
    world       TEXT,                  -- the scene's own world text; NULL: the server's
    characters  TEXT NOT NULL,         -- JSON list of rp_characters ids, in speaking order
    state       TEXT NOT NULL,         -- JSON list of entities (cogs/roleplay/scene_state.py)
    turns       INTEGER NOT NULL DEFAULT 0,
    started_at  REAL NOT NULL,         -- unix time
    updated_at  REAL NOT NULL
);
CREATE INDEX rp_scenes_guild ON rp_scenes (guild_id);

-- Each server's world: the lore every scene there plays in unless it has its own.
CREATE TABLE rp_worlds (
    guild_id    INTEGER PRIMARY KEY,
    world       TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
