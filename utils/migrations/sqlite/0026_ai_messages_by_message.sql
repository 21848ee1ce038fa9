-- AI chat: a Discord message's turns found by its id (a message deleted or edited, which
-- the bot hears of for every message it can see): without this index each lookup read
-- the channel's whole history.
CREATE INDEX ai_messages_message ON ai_messages (channel_id, message_id);
