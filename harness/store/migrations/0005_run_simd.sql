-- 0005: a run's CPU SIMD flags and its int8 kernels.
-- The flags (sysinfo's simd) and the kernels its quantized
-- models executed on ('oneDNN 2.6.3 avx2', 'none'). Empty for runs stored before.
ALTER TABLE runs ADD COLUMN simd TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN int8_engine TEXT NOT NULL DEFAULT '';
