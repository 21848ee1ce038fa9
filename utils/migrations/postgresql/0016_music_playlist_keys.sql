-- Playlist names now compare as character names do (NFKC, casefolded, without invisible
-- characters), which SQL cannot compute: LibraryStore.rekey rewrites, at start-up, the
-- keys of the playlists stored before (key_version 0), renaming one of two playlists of
-- a member whose names now compare equal rather than losing either.
ALTER TABLE music_playlists ADD COLUMN key_version INTEGER NOT NULL DEFAULT 0;
