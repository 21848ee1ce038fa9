-- The conversation chunks stored before 0015_memory_turns, which hold turns memory_turns
-- names no row for: a message deleted or edited in Discord reaches those by their lines
-- (MemoryDeletions.delete_saying), which reads only the chunks listed here, not every
-- chunk of the channel. Chunks written since name all their turns, so none is added; a
-- listed chunk that grows keeps its id, so it stays listed, and goes with its memory.
CREATE TABLE memory_untracked (
    memory_id  BIGINT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    channel_id BIGINT NOT NULL
);
CREATE INDEX memory_untracked_channel ON memory_untracked (channel_id);
INSERT INTO memory_untracked (memory_id, channel_id)
SELECT id, channel_id FROM memories
WHERE source = 'conversation' AND channel_id IS NOT NULL
  AND turns > (SELECT count(*) FROM memory_turns WHERE memory_id = memories.id);
