-- AI chat: replies that did not finish, and per-channel safety thresholds.
-- ai_messages.incomplete: NULL for a whole message; otherwise why a reply stopped early:
-- 'interrupted' (still being written), 'restart', 'crash' (the process died while writing
-- it; set at the next start), 'error', or Google's reason ('safety', 'length', ...).
-- ai_messages.message_id of a model turn: the reply's latest Discord message, the one that
-- shows the writing marker while it is written (of a user turn: the user's message).
ALTER TABLE ai_messages ADD COLUMN incomplete TEXT;
-- Replies still being written: few at any time, looked up at start-up.
CREATE INDEX ai_messages_writing ON ai_messages (id) WHERE incomplete = 'interrupted';
-- ai_channels.safety: the /ai safety level ('low', 'medium', 'high', 'off'); NULL: Google's.
ALTER TABLE ai_channels ADD COLUMN safety TEXT;
