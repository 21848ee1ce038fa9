-- Consolidation marks know their channel's guild, so that they go with the guild's
-- other data when the bot leaves it. Older marks take it from the channel's history; a
-- mark whose channel has no history left marks nothing (ids are never used twice:
-- 0014_ai_message_ids.sql) and goes.
ALTER TABLE memory_consolidation ADD COLUMN guild_id INTEGER;  -- NULL in DMs
UPDATE memory_consolidation SET guild_id = (
    SELECT max(guild_id) FROM ai_messages WHERE ai_messages.channel_id = memory_consolidation.channel_id
);
DELETE FROM memory_consolidation WHERE channel_id NOT IN (SELECT channel_id FROM ai_messages);
CREATE INDEX memory_consolidation_guild ON memory_consolidation (guild_id);
