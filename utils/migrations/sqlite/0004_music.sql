-- Music: each guild's saved session (queue, position, settings) to resume after a restart.
CREATE TABLE music_sessions (
    guild_id         INTEGER PRIMARY KEY,
    voice_channel_id INTEGER NOT NULL,
    text_channel_id  INTEGER,                 -- where the bot announces tracks
    position         REAL NOT NULL DEFAULT 0, -- seconds into the current track
    loop_mode        TEXT NOT NULL DEFAULT 'off' CHECK (loop_mode IN ('off', 'track', 'queue')),
    volume           INTEGER NOT NULL DEFAULT 100,
    paused           INTEGER NOT NULL DEFAULT 0,
    updated_at       REAL NOT NULL            -- unix time
);

CREATE TABLE music_tracks (
    guild_id     INTEGER NOT NULL REFERENCES music_sessions (guild_id) ON DELETE CASCADE,
    slot         INTEGER NOT NULL,            -- 0: the current track; 1, 2, ...: up next
    title        TEXT NOT NULL,
    source       TEXT NOT NULL,               -- what yt-dlp resolves: a URL or "prefix1:words"
    page_url     TEXT,
    duration     REAL,
    requester_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, slot)
);
