-- What people told the bot to forget: in a scope, a person's chat messages up to
-- ai_messages.id `upto_id` are never remembered again (a late index of an exchange, a
-- fact read from the log afterwards). Facts learnt in a channel keep it (channel_id).
CREATE TABLE memory_forgotten (
    scope     TEXT NOT NULL,
    author_id INTEGER NOT NULL,
    upto_id   INTEGER NOT NULL,
    PRIMARY KEY (scope, author_id)
);
