-- When each forgotten chat turn was noted: a row goes once consolidation has read past
-- it, and at the latest a week later (FORGOTTEN_TURNS_KEPT), for a channel consolidation
-- never reads again (its history cleared) or while consolidation is turned off. Rows
-- noted before this start their week now.
ALTER TABLE memory_forgotten_turns ADD COLUMN forgotten_at REAL NOT NULL DEFAULT 0;
UPDATE memory_forgotten_turns SET forgotten_at = CAST(strftime('%s', 'now') AS REAL);
CREATE INDEX memory_forgotten_turns_time ON memory_forgotten_turns (forgotten_at);
