-- AI chat: the earlier Discord messages of a reply split over several (its latest is
-- ai_messages.message_id), so that deleting any message of a reply in Discord takes the
-- reply out of the history, as deleting its latest does. They go with their turn.
CREATE TABLE ai_reply_parts (
    message_id INTEGER PRIMARY KEY,
    turn_id    INTEGER NOT NULL REFERENCES ai_messages (id) ON DELETE CASCADE
);
CREATE INDEX ai_reply_parts_turn ON ai_reply_parts (turn_id);
