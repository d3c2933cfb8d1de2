package data

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// cacheFiles lists the cache files in dir.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCacheRoundTripAndCorruption(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "cifar-10-batches-bin"), writeFakeCIFARBinary(t))
	opts := isolate(t, root)
	var logs []string
	opts.Logf = func(format string, args ...any) {
		logs = append(logs, format)
		t.Logf(format, args...)
	}
	want, err := load(ctx, "cifar10", trainSplit, opts)
	if err != nil {
		t.Fatal(err)
	}
	files := cacheFiles(t, opts.CacheDir)
	if len(files) != 1 || !strings.Contains(filepath.Base(files[0]), "cifar10-train-") {
		t.Fatalf("cache files %v, want one cifar10-train-*", files)
	}
	cache := files[0]
	good, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		corrupt   func() error
		fromCache bool
	}{
		{"intact", func() error { return nil }, true},
		{"flipped pixel", func() error {
			b := slices.Clone(good)
			b[len(b)-100] ^= 0x40
			return os.WriteFile(cache, b, 0o644)
		}, false},
		{"truncated", func() error { return os.WriteFile(cache, good[:len(good)/2], 0o644) }, false},
		{"empty", func() error { return os.WriteFile(cache, nil, 0o644) }, false},
		{"trailing garbage", func() error { return os.WriteFile(cache, append(slices.Clone(good), 1, 2, 3), 0o644) }, false},
		{"other magic", func() error {
			b := slices.Clone(good)
			copy(b, "NOTCACHE")
			return os.WriteFile(cache, b, 0o644)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.corrupt(); err != nil {
				t.Fatal(err)
			}
			logs = nil
			got, err := load(ctx, "cifar10", trainSplit, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Pixels, want.Pixels) || !slices.Equal(got.Labels, want.Labels) || got.Key != want.Key ||
				!slices.Equal(got.Classes, want.Classes) || !slices.Equal(got.Std, want.Std) || got.Name != want.Name {
				t.Fatalf("loaded set differs from the decoded one")
			}
			fromCache := len(logs) == 1 && strings.Contains(logs[0], "from cache")
			if fromCache != tt.fromCache {
				t.Errorf("from cache = %v (log %q), want %v", fromCache, logs, tt.fromCache)
			}
			if after, err := os.ReadFile(cache); err != nil || !slices.Equal(after, good) {
				t.Errorf("cache file not restored (err %v)", err)
			}
		})
	}

	// A changed source (new modification time) is a new key, not a stale hit.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(root, "cifar-10-batches-bin", "data_batch_3.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	got, err := load(ctx, "cifar10", trainSplit, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key == want.Key || len(cacheFiles(t, opts.CacheDir)) != 2 {
		t.Errorf("after touching the source: key %q (was %q), %d cache files", got.Key, want.Key, len(cacheFiles(t, opts.CacheDir)))
	}
	// Preprocessing is part of the key too.
	opts.ImageSize = 40
	big, err := load(ctx, "cifar10", trainSplit, opts)
	if err != nil {
		t.Fatal(err)
	}
	if big.H != 40 || big.Key == got.Key || len(cacheFiles(t, opts.CacheDir)) != 3 {
		t.Errorf("resized load: %dx%d, key %q, %d cache files", big.H, big.W, big.Key, len(cacheFiles(t, opts.CacheDir)))
	}
	// No temporary files are left behind.
	if tmp, _ := filepath.Glob(filepath.Join(opts.CacheDir, "*.tmp-*")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestNoCache(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "cifar-10-batches-bin"), writeFakeCIFARBinary(t))
	opts := isolate(t, root)
	opts.NoCache = true
	if _, err := load(context.Background(), "cifar10", testSplit, opts); err != nil {
		t.Fatal(err)
	}
	if f := cacheFiles(t, opts.CacheDir); len(f) != 0 {
		t.Errorf("NoCache wrote %v", f)
	}
}

func TestCacheUnwritable(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "cifar-10-batches-bin"), writeFakeCIFARBinary(t))
	opts := isolate(t, root)
	// A file where the cache directory should be: loading still works.
	opts.CacheDir = filepath.Join(root, "cifar-10-batches-bin", "test_batch.bin", "cache")
	var logged string
	opts.Logf = func(format string, args ...any) { logged += format }
	if _, err := load(context.Background(), "cifar10", testSplit, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged, "not cached") {
		t.Errorf("log %q does not report the failed cache write", logged)
	}
}
