package vit

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// Replicate returns a new model of m's configuration holding a copy of m's
// tensors, on m's device: a worker's copy for data-parallel training. The
// configuration rebuilds everything a forward pass uses (pruned shapes,
// factored layers, quantization taps, token reduction), so the replica
// computes what m computes. It fails when m's tensors do not fit m.Cfg,
// as after a stage that reshaped the model without updating its
// configuration.
func (m *Model) Replicate() (*Model, error) {
	r, err := New(m.Cfg, m.VS.Device())
	if err != nil {
		return nil, fmt.Errorf("replicate %s: %w", m.Cfg.Name, err)
	}
	r.unpaced = m.unpaced
	vars := m.VS.Variables()
	sd := make(map[string]*ts.Tensor, len(vars))
	for name := range vars {
		sd[name], _ = m.VS.Root().Get(name)
	}
	if err := r.LoadStateDict(sd); err != nil {
		r.Drop()
		return nil, fmt.Errorf("replicate %s: %w", m.Cfg.Name, err)
	}
	if err := m.shareKernels(r); err != nil {
		r.Drop()
		return nil, fmt.Errorf("replicate %s: %w", m.Cfg.Name, err)
	}
	return r, nil
}
