-- Memory: keyword terms are folded anew (utils/memory/scoring.py `words`: compatibility
-- form before lower case), so "𝐏𝐋𝐀𝐘𝐈𝐍𝐆" is held as "play", no longer as "PLAYING",
-- which FTS5 folds to "playing" and a search for "playing" (the term "play") missed.
-- Only a memory with a character outside ASCII (more bytes than characters) can hold an
-- old term: those rows go, and MemoryService writes them again at start, as for any
-- memory without a row.
DELETE FROM memory_terms WHERE rowid IN (
    SELECT id FROM memories
    WHERE length(CAST(text || author_name AS BLOB)) > length(text || author_name)
);
