-- AI chat: ids of ai_messages are never used twice. An identity column never reuses one
-- already; this migration keeps the numbering of both backends' migrations the same
-- (SQLite's table needed AUTOINCREMENT).
SELECT 1;
