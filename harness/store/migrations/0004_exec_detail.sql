-- 0004: what executed how. For a quantized experiment: the kernel library,
-- how many layers ran in int8 and what stayed in float32, or why the model
-- stayed simulated. Empty for float models and rows stored before.
ALTER TABLE experiments ADD COLUMN exec_detail TEXT NOT NULL DEFAULT '';
