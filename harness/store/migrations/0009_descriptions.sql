-- 0009: the descriptions the suite gives, so that the report can say what
-- was run: the suite's on its run, and on each experiment its own (the
-- [[experiment]]'s, or its model's for a baseline) and its model's. Empty
-- in rows stored before and where the suite gives none.
ALTER TABLE runs ADD COLUMN suite_description TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN model_description TEXT NOT NULL DEFAULT '';
