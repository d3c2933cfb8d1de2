-- 0008: the seed of each experiment and the name its seed replicas share
-- (package plan: "ptq/w8" for "ptq/w8-seed1"), so that replicas group into
-- means across seeds. seed is NULL and replica '' in rows stored before.
ALTER TABLE experiments ADD COLUMN seed INTEGER;
ALTER TABLE experiments ADD COLUMN replica TEXT NOT NULL DEFAULT '';
