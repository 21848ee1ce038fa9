-- Memory: Chinese and Japanese, written without spaces, are held as overlapping pairs of
-- characters (utils/memory/scoring.py `words`: 猫の名前 → 猫の, の名, 名前), so a word of a
-- question is found inside a sentence; before, a whole run between punctuation was one
-- term, which a search never matched. The rows of memories with such characters go, the
-- triggers take the counts down with them, and MemoryService writes them again at start,
-- as for any memory without a length row.
DELETE FROM memory_postings WHERE memory_id IN (
    SELECT id FROM memories
    WHERE (text || author_name) ~ '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]'
);
DELETE FROM memory_lengths WHERE memory_id IN (
    SELECT id FROM memories
    WHERE (text || author_name) ~ '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]'
);
