package runner

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

func tinyVit(t *testing.T, seed int64) *vit.Model {
	t.Helper()
	torchrt.ManualSeed(seed)
	m, err := vit.New(vit.Config{Name: "tiny", ImgSize: 8, PatchSize: 4, InChans: 3, NumClasses: 3,
		EmbedDim: 16, Depth: 1, NumHeads: 2, MLPRatio: 2}, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func headWeight0(t *testing.T, m *vit.Model) float64 {
	t.Helper()
	return m.Head.Weight.Float64Values()[0]
}

// assertCached checks that the artifact loads and is the save that took
// wantSeconds and holds want's weights.
func assertCached(t *testing.T, c cache, hash string, wantSeconds float64, want *vit.Model) {
	t.Helper()
	got, meta, err := c.load(hash, gotch.CPU)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer got.Drop()
	if meta.Seconds != wantSeconds || headWeight0(t, got) != headWeight0(t, want) {
		t.Errorf("cached: the save of %v seconds, want the one of %v", meta.Seconds, wantSeconds)
	}
}

// Two runs saving the same artifact: the first complete file and its
// metadata stay, and the second save leaves them consistent. A file
// without metadata (a run that died mid-save) is replaced.
func TestCacheFirstSaveWins(t *testing.T) {
	c := cache{dir: t.TempDir()}
	const hash = "ab0123456789"
	first, second := tinyVit(t, 1), tinyVit(t, 2)
	defer first.Drop()
	defer second.Drop()
	if headWeight0(t, first) == headWeight0(t, second) {
		t.Fatal("the two models should differ")
	}
	if err := c.save(hash, "model", first, &artifactMeta{Seconds: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.save(hash, "model", second, &artifactMeta{Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	assertCached(t, c, hash, 1, first)

	// A stale file nobody vouches for.
	if err := os.Remove(c.path(hash) + ".meta.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.save(hash, "model", second, &artifactMeta{Seconds: 3}); err != nil {
		t.Fatal(err)
	}
	assertCached(t, c, hash, 3, second)
	if left, _ := os.ReadDir(c.dir + "/ab"); len(left) != 3 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("cache holds %v, want the file, its config and its metadata", names)
	}
}

// TestCacheHealsEditedFiles checks that every cached file is vouched for:
// an edited evaluation in the metadata, a garbage model config and a
// corrupt tensor file each make the artifact not cached, and saving it
// again heals it.
func TestCacheHealsEditedFiles(t *testing.T) {
	const hash = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
	tests := []struct {
		name string
		edit func(t *testing.T, p string)
	}{
		{"evaluation edited", func(t *testing.T, p string) {
			b, err := os.ReadFile(p + ".meta.json")
			if err != nil {
				t.Fatal(err)
			}
			edited := strings.Replace(string(b), `"top1": 61.5`, `"top1": 99.5`, 1)
			if edited == string(b) {
				t.Fatalf("no top-1 to edit in %s", b)
			}
			os.WriteFile(p+".meta.json", []byte(edited), 0o644)
		}},
		{"config garbage", func(t *testing.T, p string) { os.WriteFile(p+".json", []byte("garbage"), 0o644) }},
		{"config edited", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p + ".json")
			os.WriteFile(p+".json", append(b, ' '), 0o644)
		}},
		{"tensors truncated", func(t *testing.T, p string) { os.Truncate(p, 10) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache{dir: t.TempDir()}
			m := tinyVit(t, 1)
			defer m.Drop()
			meta := &artifactMeta{Seconds: 1, Eval: &evalJSON{Top1: 61.5, N: 10}}
			if err := c.save(hash, "train", m, meta); err != nil {
				t.Fatal(err)
			}
			if _, err := c.meta(hash); err != nil {
				t.Fatalf("fresh artifact: %v", err)
			}
			tt.edit(t, c.path(hash))
			if _, err := c.meta(hash); !errors.Is(err, errNotCached) {
				t.Fatalf("after the edit: err = %v, want errNotCached", err)
			}
			if err := c.save(hash, "train", m, &artifactMeta{Seconds: 2, Eval: &evalJSON{Top1: 61.5, N: 10}}); err != nil {
				t.Fatalf("save again: %v", err)
			}
			assertCached(t, c, hash, 2, m)
		})
	}
}
