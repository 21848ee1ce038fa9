-- Memory: keyword terms are folded as SQLite's FTS5 folds them (utils/memory/scoring.py
-- `words`: compatibility form before lower case, a final sigma as the other sigma), so
-- "𝐌𝐚𝐲𝐚" is held as "maya", no longer "Maya", and "𝐏𝐋𝐀𝐘𝐈𝐍𝐆" as "play". Rows written
-- before may hold the old form, which searches no longer find. Only a memory with a
-- character outside ASCII can hold one (a term alone does not tell: a bold Y may have been
-- stemmed to a plain "y"), so those memories' rows go, the triggers take the counts down
-- with them, and MemoryService writes the rows again at start, as for any memory without
-- a length row. A range in a pattern is one of code points, whatever the collation.
DELETE FROM memory_postings WHERE memory_id IN (
    SELECT id FROM memories WHERE (text || author_name) ~ '[^\x01-\x7f]'
);
DELETE FROM memory_lengths WHERE memory_id IN (
    SELECT id FROM memories WHERE (text || author_name) ~ '[^\x01-\x7f]'
);
