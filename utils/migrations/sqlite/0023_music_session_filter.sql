-- Music: the /filter on when a session was saved, so a restored queue plays with it.
-- filter_name: a preset's name or 'speed' (NULL: no filter); filter_speed: its speed.
ALTER TABLE music_sessions ADD COLUMN filter_name TEXT;
ALTER TABLE music_sessions ADD COLUMN filter_speed REAL NOT NULL DEFAULT 1;
