-- Which chat turns (ai_messages.id) each conversation chunk holds, written in the
-- chunk's transaction (a chunk that grows adds its new turns). A message deleted or
-- edited in Discord forgets the chunks holding its turn, and only those. Chunks stored
-- before this migration have no rows for the turns they held then: for those chunks
-- MemoryStore.delete_saying matches whole lines instead.
CREATE TABLE memory_turns (
    memory_id BIGINT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    turn_id   BIGINT NOT NULL,
    PRIMARY KEY (memory_id, turn_id)
);
CREATE INDEX memory_turns_turn ON memory_turns (turn_id);
