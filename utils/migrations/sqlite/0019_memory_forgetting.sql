-- Chat turns (ai_messages.id) of single memories people told the bot to forget, that
-- consolidation has not read yet: it skips them, so a forgotten chunk never comes back
-- as a fact. A row goes once consolidation has read past it, or with its channel/guild.
CREATE TABLE memory_forgotten_turns (
    turn_id    INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL,
    guild_id   INTEGER                  -- NULL in DMs
);
CREATE INDEX memory_forgotten_turns_channel ON memory_forgotten_turns (channel_id);
CREATE INDEX memory_forgotten_turns_guild ON memory_forgotten_turns (guild_id);

-- The earlier Discord messages of the split replies a memory holds (memory_turns has a
-- reply's latest only), so that deleting any of them forgets it, also once the chat
-- history let the reply go. Those the history still holds are taken from it.
CREATE TABLE memory_reply_parts (
    memory_id  INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (memory_id, message_id)
);
CREATE INDEX memory_reply_parts_message ON memory_reply_parts (message_id);
INSERT INTO memory_reply_parts (memory_id, message_id)
SELECT DISTINCT memory_turns.memory_id, ai_reply_parts.message_id
FROM memory_turns JOIN ai_reply_parts ON ai_reply_parts.turn_id = memory_turns.turn_id;

-- Channels and guilds whose memories were just purged, and the newest chat turn then:
-- work still under way (a consolidation pass, queued indexing) writes nothing of the
-- turns up to it back. Kept a day, far longer than any such work runs; ids only.
CREATE TABLE memory_purges (
    kind      TEXT NOT NULL CHECK (kind IN ('channel', 'guild')),
    target_id INTEGER NOT NULL,
    upto_id   INTEGER NOT NULL,
    purged_at REAL NOT NULL,           -- unix time
    PRIMARY KEY (kind, target_id)
);
