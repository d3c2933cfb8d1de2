package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/vit"
)

// artifactMeta sits beside a cached model and vouches for it: the
// checksum of the tensor file, and results computed from this exact model
// (its evaluation, its training curve), so a warm run only re-times it.
type artifactMeta struct {
	Hash    string      `json:"hash"`
	Kind    string      `json:"kind"`
	SHA256  string      `json:"sha256"` // of the .pt file
	Bytes   int64       `json:"bytes"`
	Created time.Time   `json:"created"`
	Seconds float64     `json:"seconds"`  // time to make it from its upstream
	PeakRSS int64       `json:"peak_rss"` // peak resident bytes while making it
	Curve   []pointJSON `json:"curve,omitempty"`
	Eval    *evalJSON   `json:"eval,omitempty"`
	// ExecEval is the evaluation of the model executed on int8 kernels,
	// when it is quantized and they run it; Eval is then the simulated
	// model's.
	ExecEval *evalJSON `json:"exec_eval,omitempty"`
	// ConfigSHA256 is the checksum of the model config (.pt.json) and
	// MetaSHA256 that of this record itself (with MetaSHA256 empty), so
	// that an edited config or cached result is rebuilt, not believed.
	// Both are empty in records written before they existed, which are
	// read as they are.
	ConfigSHA256 string `json:"config_sha256,omitempty"`
	MetaSHA256   string `json:"meta_sha256,omitempty"`
}

// selfSum is the checksum of the record with MetaSHA256 empty.
func (m artifactMeta) selfSum() (string, error) {
	m.MetaSHA256 = ""
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

type pointJSON struct {
	Series string  `json:"series"`
	Step   int     `json:"step"`
	Value  float64 `json:"value"`
}

type evalJSON struct {
	Top1    float64 `json:"top1"`
	Top5    float64 `json:"top5"`
	N       int     `json:"n"`
	Seconds float64 `json:"seconds"`
	Version int     `json:"version,omitempty"` // evalVersion when evaluated
	Detail  string  `json:"detail,omitempty"`  // the kernels an executed evaluation ran (qexec.Report.Summary)
	// Images identifies the test images evaluated (dataset.images); an
	// evaluation of other images is redone, not reused.
	Images string `json:"images,omitempty"`
	// Top1Bits and Top5Bits are each image's outcome (stats.Bits).
	Top1Bits []byte `json:"top1_bits,omitempty"`
	Top5Bits []byte `json:"top5_bits,omitempty"`
}

// current reports whether a cached evaluation holds for the images of
// this run: the same forward pass over the same images, outcomes kept.
func (e *evalJSON) current(images string) bool {
	return e != nil && e.Version == evalVersion && e.Images == images && e.Top1Bits != nil
}

// evalVersion numbers the forward pass an evaluation ran. Bump it when a
// change alters what an unchanged artifact evaluates to (1: a
// half-precision model's LayerNorm runs in float32; 2: each image's
// outcome is kept), so that cached evaluations are redone instead of
// reported under the new code.
const evalVersion = 2

// cache stores artifacts as DIR/ab/abcdef....pt (+ .pt.json, the model
// config, + .meta.json).
type cache struct{ dir string }

func (c cache) path(hash string) string {
	return filepath.Join(c.dir, hash[:2], hash+".pt")
}

// errNotCached means the artifact must be (re)built.
var errNotCached = errors.New("not cached")

// meta returns the artifact's metadata after checking the tensor file
// against its checksum; a missing, truncated or corrupt artifact is
// errNotCached (wrapped with the reason).
func (c cache) meta(hash string) (*artifactMeta, error) {
	p := c.path(hash)
	b, err := os.ReadFile(p + ".meta.json")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotCached, err)
	}
	var m artifactMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: corrupt metadata %s: %v", errNotCached, p+".meta.json", err)
	}
	if m.MetaSHA256 != "" {
		if sum, err := m.selfSum(); err != nil || sum != m.MetaSHA256 {
			return nil, fmt.Errorf("%w: %s does not match its checksum (edited or corrupt)", errNotCached, p+".meta.json")
		}
	}
	sum, n, err := fileSHA256(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotCached, err)
	}
	if sum != m.SHA256 || n != m.Bytes {
		return nil, fmt.Errorf("%w: %s does not match its checksum (corrupt or truncated)", errNotCached, p)
	}
	cfg, err := os.ReadFile(p + ".json")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotCached, err)
	}
	switch sum := sha256.Sum256(cfg); {
	case m.ConfigSHA256 != "" && hex.EncodeToString(sum[:]) != m.ConfigSHA256:
		return nil, fmt.Errorf("%w: %s does not match its checksum (edited or corrupt)", errNotCached, p+".json")
	case !json.Valid(cfg):
		return nil, fmt.Errorf("%w: %s is not JSON", errNotCached, p+".json")
	}
	return &m, nil
}

// load returns the cached model after checking it.
func (c cache) load(hash string, dev gotch.Device) (*vit.Model, *artifactMeta, error) {
	m, err := c.meta(hash)
	if err != nil {
		return nil, nil, err
	}
	model, err := vit.Load(c.path(hash), dev)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNotCached, err)
	}
	return model, m, nil
}

// save writes the model and its metadata; the metadata goes last, so an
// interrupted save leaves an artifact that fails its check.
//
// Runs sharing a cache may build the same artifact at once. The first
// complete file wins: each writes under a private name and links it into
// place, which fails if the file is there already; the loser keeps the
// winner's file and metadata. Replacing the file instead (a rename) let a
// run read its own metadata beside the other run's file, whose bytes
// differ even for equal tensors (gotch writes them in map order):
// cmd/bench TestConcurrentRunsShareADatabase failed now and then.
func (c cache) save(hash, kind string, model *vit.Model, meta *artifactMeta) error {
	p := c.path(hash)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp%d", p, os.Getpid())
	defer os.Remove(tmp)
	defer os.Remove(tmp + ".json")
	if err := model.Save(tmp); err != nil {
		return err
	}
	sum, n, err := fileSHA256(tmp)
	if err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if c.awaitMeta(hash) {
			return nil // another run's artifact, complete
		}
		// A file nobody vouches for: left by a run that died mid-save.
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	cfg, err := os.ReadFile(tmp + ".json")
	if err != nil {
		return err
	}
	cfgSum := sha256.Sum256(cfg)
	if err := os.Rename(tmp+".json", p+".json"); err != nil {
		return err
	}
	meta.Hash, meta.Kind, meta.SHA256, meta.Bytes = hash, kind, sum, n
	meta.ConfigSHA256 = hex.EncodeToString(cfgSum[:])
	if meta.Created.IsZero() {
		meta.Created = time.Now().UTC()
	}
	return c.writeMeta(hash, meta)
}

// awaitMeta reports whether the artifact's file is vouched for by its
// metadata, waiting a little for a concurrent writer to finish it.
func (c cache) awaitMeta(hash string) bool {
	for range 50 {
		if _, err := c.meta(hash); err == nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (c cache) writeMeta(hash string, meta *artifactMeta) error {
	sum, err := meta.selfSum()
	if err != nil {
		return err
	}
	meta.MetaSHA256 = sum
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	p := c.path(hash) + ".meta.json"
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func fileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
