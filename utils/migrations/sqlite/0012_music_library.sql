-- Music: each server's recently played tracks and each member's saved playlists.
CREATE TABLE music_history (
    id           INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL,
    title        TEXT NOT NULL,
    source       TEXT NOT NULL,               -- what yt-dlp resolves: a URL or "prefix1:words"
    page_url     TEXT,
    duration     REAL,
    requester_id INTEGER NOT NULL,
    played_at    REAL NOT NULL                -- unix time
);
CREATE INDEX music_history_guild ON music_history (guild_id, id);

CREATE TABLE music_playlists (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,                 -- casefolded name: unique per member and server
    created_at REAL NOT NULL,                 -- unix time
    updated_at REAL NOT NULL,
    UNIQUE (guild_id, user_id, name_key)
);

CREATE TABLE music_playlist_tracks (
    playlist_id INTEGER NOT NULL REFERENCES music_playlists (id) ON DELETE CASCADE,
    slot        INTEGER NOT NULL,
    title       TEXT NOT NULL,
    source      TEXT NOT NULL,
    page_url    TEXT,
    duration    REAL,
    PRIMARY KEY (playlist_id, slot)
);
