package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLatencyJSON(t *testing.T) {
	art := saveTinyArtifact(t, t.TempDir(), false)
	tests := []struct {
		args    []string
		arch    string
		batch   int
		threads int
		engine  string
	}{
		{[]string{"--weights", art, "--batch", "3", "--threads", "1", "--warmup", "1", "--iters", "7"}, "tiny", 3, 1, "eager"},
		{[]string{"--weights", art, "--threads", "2", "--iters", "5"}, "tiny", 1, 2, "auto"},
		{[]string{"--weights", art, "--batch", "3", "--threads", "2", "--iters", "5"}, "tiny", 3, 2, "auto"},
		{[]string{"--weights", art, "--batch", "3", "--threads", "2", "--engine", "split", "--iters", "5"}, "tiny", 3, 2, "split"},
		{[]string{"--weights", art, "--threads", "2", "--engine", "eager", "--iters", "5"}, "tiny", 1, 2, "eager"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--img-size", "32", "--num-classes", "10", "--batch", "2", "--threads", "1", "--warmup", "0", "--iters", "3"}, "deit_tiny_patch16_224", 2, 1, "eager"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var keys map[string]json.RawMessage
			var r latencyResult
			var stdout, stderr bytes.Buffer
			args := append([]string{"latency", "--json"}, tt.args...)
			if err := Main(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			if err := json.Unmarshal(stdout.Bytes(), &keys); err != nil {
				t.Fatalf("not one JSON object: %v\n%s", err, stdout.String())
			}
			for _, k := range []string{"arch", "batch", "threads", "device", "p50_ms", "p90_ms", "p99_ms", "throughput_ips", "engine", "engine_ran"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("key %q missing:\n%s", k, stdout.String())
				}
			}
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			ran := map[string][]string{"auto": {"split", "eager"}, "split": {"split"}, "eager": {"eager"}}[tt.engine]
			if !slices.Contains(ran, r.EngineRan) {
				t.Errorf("engine %q ran %q, want one of %q", r.Engine, r.EngineRan, ran)
			}
			if r.Arch != tt.arch || r.Batch != tt.batch || r.Threads != tt.threads || r.Device != "cpu" || r.Engine != tt.engine {
				t.Errorf("arch %q batch %d threads %d device %q engine %q; want %q %d %d cpu %q",
					r.Arch, r.Batch, r.Threads, r.Device, r.Engine, tt.arch, tt.batch, tt.threads, tt.engine)
			}
			if !(r.P50ms > 0 && r.P50ms <= r.P90ms && r.P90ms <= r.P99ms) {
				t.Errorf("percentiles not ordered and positive: p50 %g p90 %g p99 %g", r.P50ms, r.P90ms, r.P99ms)
			}
			if want := float64(r.Batch) / (r.P50ms / 1e3); math.Abs(r.Throughput-want) > 1e-6*want {
				t.Errorf("throughput %g, want batch / p50 = %g", r.Throughput, want)
			}
		})
	}
}

func TestLatencyText(t *testing.T) {
	art := saveTinyArtifact(t, t.TempDir(), false)
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"latency", "--weights", art, "--threads", "1", "--iters", "3", "--warmup", "0"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	s := stdout.String()
	for _, want := range []string{"tiny in fp32 on cpu, batch 1, 1 threads (eager): 0 warm-up + 3 timed passes, no-grad\n", "\np50  ", "\np90  ", "\np99  ", " ms\n", "images/s (batch / p50)\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q not in\n%s", want, s)
		}
	}
}

func TestLatencyErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{}, "--arch is required"},
		{[]string{"--arch", "vit_nano"}, `unknown ViT architecture "vit_nano"`},
		{[]string{"--arch", "deit_tiny_patch16_224", "--batch", "0"}, "--batch 0: want >= 1"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--iters", "0"}, "--iters 0: want >= 1"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--warmup", "-1"}, "--warmup -1: want >= 0"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--threads", "-2"}, "--threads -2"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--device", "tpu"}, `--device "tpu": want cpu or cuda`},
		{[]string{"--arch", "deit_tiny_patch16_224", "--engine", "fast"}, `--engine "fast": want auto, split, eager`},
		{[]string{"--arch", "deit_tiny_patch16_224", "--engine", "split", "--device", "cuda"}, "--engine split: CPU only"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--weights", filepath.Join(t.TempDir(), "nope.pth")}, "no such file"},
		{[]string{"--arch", "deit_tiny_patch16_224", "now"}, `unexpected argument "now"`},
		{[]string{"--batch", "x"}, "invalid value"},
		{[]string{"--arch", "deit_tiny_patch16_224", "--precision", "int4"}, `--precision "int4": want fp32, bf16, fp16, int8 or int8-dynamic`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), append([]string{"latency"}, tt.args...), &stdout, &stderr)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
			t.Errorf("%q: err = %v, want a usage error containing %q", tt.args, err, tt.wantErr)
		}
		if stdout.Len() > 0 {
			t.Errorf("%q: printed %q despite the error", tt.args, stdout.String())
		}
	}
}

// TestLatencyCanceled stops when the context ends instead of finishing
// the passes.
func TestLatencyCanceled(t *testing.T) {
	art := saveTinyArtifact(t, t.TempDir(), false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err := Main(ctx, []string{"latency", "--weights", art, "--threads", "1", "--iters", "1000000"}, &stdout, &stderr)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestLatencyPrecision times a cast model and says which precision ran;
// a precision with no kernel on the device fails, naming it, and prints
// nothing.
func TestLatencyPrecision(t *testing.T) {
	art := saveTinyArtifact(t, t.TempDir(), false)
	tests := []struct {
		precision string
		executed  string // "" for an error
		wantErr   string
	}{
		{"fp32", "fp32", ""},
		{"bf16", "bf16", ""},
		{"fp16", "", "precision fp16 does not execute on the CPU"},
	}
	for _, tt := range tests {
		t.Run(tt.precision, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"latency", "--json", "--weights", art, "--threads", "1", "--warmup", "0", "--iters", "3", "--precision", tt.precision}
			err := Main(context.Background(), args, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if stdout.Len() > 0 {
					t.Errorf("printed %q despite the error", stdout.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			var r latencyResult
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.Executed != tt.executed || !(r.P50ms > 0) {
				t.Errorf("executed %q p50 %g ms, want %q and a positive time", r.Executed, r.P50ms, tt.executed)
			}
		})
	}
}
