-- 0002: how a run's CPU passes used their threads (latency depends on it):
-- 'eager' (one pass on libtorch's intra-op pool, as PyTorch eager runs
-- it) or 'split' (each thread a share of the pass). Runs stored before
-- the engine existed timed eagerly.
ALTER TABLE runs ADD COLUMN engine TEXT NOT NULL DEFAULT 'eager';
