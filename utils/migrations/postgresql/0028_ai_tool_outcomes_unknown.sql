-- Tool calls that failed part way were recorded as refused or failed (ok = 0) with
-- "(may have been done)" after their text; such calls are now a kind of their own
-- (ok = 2, outcome unknown), which `/ai audit` lists apart.
UPDATE ai_tool_actions SET ok = 2 WHERE ok = 0 AND result LIKE '%(may have been done)';
