-- AI chat: where a channel's conversation starts afresh (a roleplay scene began or ended
-- there): replies read only the turns after this ai_messages.id (0: all of them). The
-- turns before it stay stored, exported and deletable.
ALTER TABLE ai_channels ADD COLUMN context_from INTEGER NOT NULL DEFAULT 0;
