-- Which chat turns (ai_messages.id) each conversation chunk holds, and their Discord
-- messages, written in the chunk's transaction (a chunk that grows adds its new turns).
-- A message deleted or edited in Discord forgets the chunks holding it, and only those,
-- also once the chat history no longer holds it (message_id). Chunks stored
-- before this migration have no rows for the turns they held then: for those chunks
-- MemoryStore.delete_saying matches whole lines instead.
CREATE TABLE memory_turns (
    memory_id INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    turn_id   INTEGER NOT NULL,
    message_id INTEGER,                -- the turn's Discord message (a reply's latest)
    PRIMARY KEY (memory_id, turn_id)
);
CREATE INDEX memory_turns_turn ON memory_turns (turn_id);
CREATE INDEX memory_turns_message ON memory_turns (message_id);
