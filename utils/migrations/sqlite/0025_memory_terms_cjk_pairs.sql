-- Memory: Chinese and Japanese, written without spaces, are held as overlapping pairs of
-- characters (utils/memory/scoring.py `words`: 猫の名前 → 猫の, の名, 名前), so a word of a
-- question is found inside a sentence; before, a whole run between punctuation was one
-- term, which a search never matched. The rows of memories with such characters go, and
-- MemoryService writes them again at start, as for any memory without a row.
DELETE FROM memory_terms WHERE rowid IN (
    SELECT id FROM memories
    WHERE text || author_name GLOB '*[぀-ヿ㐀-䶿一-鿿豈-﫿ｦ-ﾟ𠀀-𯿿]*'
);
