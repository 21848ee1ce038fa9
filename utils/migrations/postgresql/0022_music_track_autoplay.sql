-- Music: whether a saved track was chosen by autoplay, so a restored queue still shows it
-- as autoplay's and does not count it against the member whose track it followed.
ALTER TABLE music_tracks ADD COLUMN autoplay BIGINT NOT NULL DEFAULT 0;
