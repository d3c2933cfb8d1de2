-- 0006: every quantized site of an experiment's model, as JSON (store.Quantization):
-- each weight and activation quantizer's key, bits, kind, granularity and symmetry,
-- and a mixed-precision search's sensitivities and choice. Empty for float models
-- and rows stored before.
ALTER TABLE experiments ADD COLUMN quant_sites TEXT NOT NULL DEFAULT '';
