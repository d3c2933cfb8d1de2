package vit

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sugarme/gotch/ts"
)

// LinearKernel computes a linear layer in place of its float32 product:
// an executed low-precision kernel (package qexec builds int8 ones).
type LinearKernel interface {
	// Forward returns the layer's output for x [..., In] (float32),
	// not freeing x; it quantizes x itself.
	Forward(x *ts.Tensor) *ts.Tensor
	// GELU reports whether Forward's output has the GELU applied (fused
	// into fc1's kernel).
	GELU() bool
	// Close frees the kernel.
	Close()
}

// executed is what SetKernels changed, so that a replica repeats it.
type executed struct {
	kernels map[string]LinearKernel // by Linear.Name
	dropped []string                // activation quantizer keys removed
	owner   bool                    // m closes the kernels when dropped
}

// SetKernels makes the layers named in kernels (Linear.Name) compute with
// their kernel, and removes the activation quantizers at the keys in
// dropActs: the quantizers of executed layers' inputs, which their
// kernels apply, and those no kernel executes, which the executed graph
// does not compute. executed (e.g. "int8") becomes Cfg.Executed. The
// model owns the kernels from then on: Drop closes them.
func (m *Model) SetKernels(kernels map[string]LinearKernel, dropActs []string, executedAs string) error {
	if m.exec != nil {
		return fmt.Errorf("model %q already executes kernels", m.Cfg.Name)
	}
	if err := m.setKernels(kernels, dropActs); err != nil {
		return err
	}
	m.exec = &executed{kernels: kernels, dropped: slices.Clone(dropActs), owner: true}
	m.Cfg.Executed = executedAs
	return nil
}

func (m *Model) setKernels(kernels map[string]LinearKernel, dropActs []string) error {
	byName := map[string]*Linear{}
	for _, l := range m.Linears() {
		byName[l.Name] = l.Linear
	}
	for _, name := range slices.Sorted(maps.Keys(kernels)) {
		if _, ok := byName[name]; !ok {
			return fmt.Errorf("kernel for layer %s, which model %q does not have", name, m.Cfg.Name)
		}
	}
	pts := m.TapPoints()
	for _, key := range dropActs {
		if _, ok := pts[key]; !ok {
			return fmt.Errorf("activation site %s, which model %q does not have", key, m.Cfg.Name)
		}
		if m.Cfg.Quant == nil || m.Cfg.Quant.Acts[key] == nil {
			return fmt.Errorf("no activation quantizer at %s to remove", key)
		}
		spec := m.Cfg.Quant.Acts[key]
		p := m.quantPoint(key, spec)
		*p = withoutTap(*p, spec)
	}
	for name, k := range kernels {
		byName[name].Kernel = k
	}
	return nil
}

// shareKernels gives replica r the kernels and removed quantizers of m.
func (m *Model) shareKernels(r *Model) error {
	if m.exec == nil {
		return nil
	}
	if err := r.setKernels(m.exec.kernels, m.exec.dropped); err != nil {
		return err
	}
	r.exec = &executed{kernels: m.exec.kernels, dropped: m.exec.dropped}
	return nil
}

// closeKernels closes the kernels m owns.
func (m *Model) closeKernels() {
	if m.exec == nil || !m.exec.owner {
		return
	}
	for _, k := range m.exec.kernels {
		k.Close()
	}
	m.exec = nil
}

// withoutTap returns t with q removed from its chain.
func withoutTap(t, q Tap) Tap {
	switch c := t.(type) {
	case nil:
		return nil
	case chainTap:
		return ChainTap(withoutTap(c.first, q), withoutTap(c.then, q))
	}
	if t == q {
		return nil
	}
	return t
}
