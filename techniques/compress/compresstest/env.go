// Package compresstest provides a compress.Env for the techniques' tests:
// it trains on synthetic quadrants (package techtest), serves teachers
// from functions and records every training it is asked for.
package compresstest

import (
	"context"
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/techniques/compress"
)

// Env is a compress.Env for tests. The zero value trains on 128
// quadrant images with AdamW at a constant 1e-3 (or the training's rate),
// has no calibration data and no teachers.
type Env struct {
	// Data trains; nil means techtest.Quadrants{N: 128, Batch: 32, Seed: 100}.
	Data train.Source
	// Recipe is the base recipe; the zero value means AdamW, constant
	// schedule, LR 1e-3, weight decay 0.05. Epochs and a non-zero LR
	// come from each training.
	Recipe *train.Recipe
	// NoTrain records trainings without running them.
	NoTrain bool
	// Calib serves Calibration; nil fails it.
	Calib func(n int) []*ts.Tensor
	// Teachers make the models Model returns, by name.
	Teachers map[string]func() *vit.Model
	// OnTrain, when set, runs after each training with the model.
	OnTrain func(m *vit.Model, t compress.Training)
	// Log, when set, receives Logf's lines (e.g. testing.T.Logf).
	Log func(format string, args ...any)

	Trainings []compress.Training // every training asked for, in order
	Steps     int                 // optimizer steps taken
	Fetched   []string            // teachers handed out, in order
	Logs      []string
}

var _ compress.Env = (*Env)(nil)

// Device is the CPU.
func (e *Env) Device() gotch.Device { return gotch.CPU }

// Seed is 0.
func (e *Env) Seed() int64 { return 0 }

// Logf records the line and passes it to Log.
func (e *Env) Logf(format string, args ...any) {
	e.Logs = append(e.Logs, fmt.Sprintf(format, args...))
	if e.Log != nil {
		e.Log(format, args...)
	}
}

// Calibration returns Calib(n).
func (e *Env) Calibration(_ context.Context, n int) ([]*ts.Tensor, error) {
	if e.Calib == nil {
		return nil, fmt.Errorf("no calibration data in this test")
	}
	return e.Calib(n), nil
}

// Train records t and trains m as it asks, unless NoTrain.
func (e *Env) Train(ctx context.Context, m *vit.Model, t compress.Training) error {
	e.Trainings = append(e.Trainings, t)
	if e.NoTrain {
		return nil
	}
	r := train.Recipe{LR: 1e-3, Optimizer: "adamw", Schedule: "constant", WeightDecay: 0.05}
	if e.Recipe != nil {
		r = *e.Recipe
	}
	r.Epochs = t.Epochs
	if t.LR > 0 {
		r.LR = t.LR
	}
	var data train.Source = techtest.Quadrants{N: 128, Batch: 32, Seed: 100}
	if e.Data != nil {
		data = e.Data
	}
	res, err := train.Fit(ctx, m, data, r, train.Options{Loss: t.Loss, AfterStep: t.AfterStep})
	if res != nil {
		e.Steps += res.Steps
	}
	if err != nil {
		return err
	}
	if e.OnTrain != nil {
		e.OnTrain(m, t)
	}
	return nil
}

// Model makes the named teacher; the caller drops it.
func (e *Env) Model(_ context.Context, name string) (*vit.Model, error) {
	mk, ok := e.Teachers[name]
	if !ok {
		return nil, fmt.Errorf("no model %q", name)
	}
	e.Fetched = append(e.Fetched, name)
	return mk(), nil
}
