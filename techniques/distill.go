package techniques

// DistillConfig is the parameters of a distill stage: the fine-tune
// block, with a teacher required and one epoch by default. The student is
// the incoming model (a declared model, or the compressed model of the
// previous stage: KD-assisted recovery).
type DistillConfig struct {
	FineTune
}

// NewDistillConfig returns the defaults: one epoch of soft distillation
// at T = 4 and alpha = 0.5 (the teacher has no default).
func NewDistillConfig() *DistillConfig {
	c := &DistillConfig{FineTune: NewFineTune()}
	c.Epochs = 1
	return c
}

// Validate checks the parameters.
func (c *DistillConfig) Validate() error {
	var v invalid
	if c.Teacher == "" {
		v.add("teacher is required: name a model or experiment of the suite")
	}
	if c.Epochs <= 0 {
		v.add("finetune_epochs %g: want > 0", c.Epochs)
	}
	c.FineTune.check(&v)
	return v.err(Distill)
}
