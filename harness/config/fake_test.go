package config

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vitbench/vitbench/techniques"
)

// Fake techniques, registered for the tests of this package only. Their
// Configs have every kind of field the loader must handle.

type fakeQuant struct {
	WeightBits int      `toml:"weight_bits"`
	ActBits    int      `toml:"act_bits"`
	Calibrator string   `toml:"calibrator"`
	PerChannel bool     `toml:"per_channel"`
	Percentile float64  `toml:"percentile"`
	Groups     []string `toml:"groups"`
}

func (c *fakeQuant) Validate() error {
	var errs []error
	if c.WeightBits < 2 || c.WeightBits > 8 {
		errs = append(errs, fmt.Errorf("weight_bits must be in 2..8, got %d", c.WeightBits))
	}
	if !slices.Contains([]string{"minmax", "percentile", "omse"}, c.Calibrator) {
		errs = append(errs, fmt.Errorf("unknown calibrator %q", c.Calibrator))
	}
	return errors.Join(errs...)
}

type fakePrune struct {
	Kind   string  `toml:"kind"`
	Amount float64 `toml:"amount"`
	Layers []int   `toml:"layers"`
	skip   int     // unexported: not a parameter
	Hidden int     `toml:"-"`
}

func (c *fakePrune) Validate() error {
	if c.Amount < 0 || c.Amount >= 1 {
		return fmt.Errorf("amount must be in [0, 1), got %g", c.Amount)
	}
	return nil
}

type fakeDistill struct {
	Teacher     string  `toml:"teacher"`
	Temperature float64 `toml:"temperature"`
	Alpha       float64 `toml:"alpha"`
	Epochs      float64 `toml:"epochs"`
}

func (c *fakeDistill) Validate() error {
	if c.Teacher == "" {
		return errors.New("teacher is required")
	}
	return nil
}

func (c *fakeDistill) References() []string { return []string{c.Teacher} }

func init() {
	techniques.Register(techniques.Technique{Name: "fq", Family: "quantize", NewConfig: func() techniques.Config {
		return &fakeQuant{WeightBits: 8, ActBits: 8, Calibrator: "minmax", Percentile: 99.9}
	}})
	techniques.Register(techniques.Technique{Name: "fp", Family: "prune", NewConfig: func() techniques.Config {
		return &fakePrune{Kind: "heads", Amount: 0.5}
	}})
	techniques.Register(techniques.Technique{Name: "fd", Family: "distill", NewConfig: func() techniques.Config {
		return &fakeDistill{Temperature: 4, Alpha: 0.5, Epochs: 1}
	}})
}
