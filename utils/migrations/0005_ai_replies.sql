-- AI chat: replies that did not finish, and per-channel safety thresholds.
-- ai_messages.incomplete: NULL for a whole message; otherwise why a reply stopped early:
-- 'interrupted' (still being written when the process died), 'restart', 'error',
-- or Google's reason ('safety', 'length', 'recitation', 'prohibited', 'blocklist', ...).
ALTER TABLE ai_messages ADD COLUMN incomplete TEXT;
-- ai_channels.safety: the /ai safety level ('low', 'medium', 'high', 'off'); NULL: Google's.
ALTER TABLE ai_channels ADD COLUMN safety TEXT;
