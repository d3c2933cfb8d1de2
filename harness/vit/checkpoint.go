package vit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/pickle"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// readStateDict reads a PyTorch checkpoint written by torch.save: a state
// dict, or a dict holding one under "model", "state_dict" or "module"
// (nested dicts are flattened with dotted keys). Tensors land on the CPU.
func readStateDict(path string) (map[string]*ts.Tensor, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	v, err := pickle.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler { return pickle.NewUnpickler(r) })
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	out := map[string]*ts.Tensor{}
	if err := flatten("", v, out); err != nil {
		for _, t := range out {
			t.MustDrop()
		}
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read checkpoint %s: no tensors found", path)
	}
	return out, nil
}

func flatten(prefix string, v any, out map[string]*ts.Tensor) error {
	visit := func(k any, val any) error {
		ks, ok := k.(string)
		if !ok {
			return nil // non-string keys are not state-dict entries
		}
		name := ks
		if prefix != "" {
			name = prefix + "." + ks
		}
		return flatten(name, val, out)
	}
	switch x := v.(type) {
	case *pickle.Dict:
		for _, e := range *x {
			if err := visit(e.Key, e.Value); err != nil {
				return err
			}
		}
	case *pickle.OrderedDict:
		for el := x.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*pickle.OrderedDictEntry)
			if err := visit(e.Key, e.Value); err != nil {
				return err
			}
		}
	case *pickle.StorageTensor:
		t, err := storageTensor(x)
		if err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		if t != nil {
			out[prefix] = t
		}
	}
	return nil // other values (optimizer state, epochs, args) are ignored
}

func storageTensor(sx *pickle.StorageTensor) (*ts.Tensor, error) {
	data := sx.Source.GetData()
	if reflect.ValueOf(data).Len() == 0 {
		return nil, nil
	}
	size, stride := sx.Size, sx.Stride
	scalar := len(size) == 0
	if scalar {
		size, stride = []int64{1}, []int64{1}
	}
	dtype := sx.Source.DType()
	flat, err := ts.OfSlice(data, ts.WithDType(dtype))
	if err != nil {
		return nil, err
	}
	t, err := flat.AsStrided(size, stride, []int64{sx.StorageOffset}, true)
	if err != nil {
		return nil, err
	}
	c := t.MustContiguous(true)
	if scalar {
		c = c.MustReshape([]int64{}, true)
	}
	return c, nil
}

// layout names a checkpoint naming convention.
type layout string

// Checkpoint layouts.
const (
	layoutTimm        layout = "timm"
	layoutTorchvision layout = "torchvision"
)

// detectLayout tells the naming convention of a state dict by its sentinel
// keys, as timm's checkpoint_filter_fn does.
func detectLayout(sd map[string]*ts.Tensor) layout {
	if _, ok := sd["class_token"]; ok {
		return layoutTorchvision
	}
	if _, ok := sd["conv_proj.weight"]; ok {
		return layoutTorchvision
	}
	return layoutTimm
}

// filterCheckpoint turns a state dict of either layout into timm names,
// stripping wrapper prefixes ("module.", "model."). It takes ownership of
// the tensors in sd.
func filterCheckpoint(sd map[string]*ts.Tensor) map[string]*ts.Tensor {
	stripped := make(map[string]*ts.Tensor, len(sd))
	for k, v := range sd {
		for _, p := range []string{"module.", "model.", "state_dict."} {
			k = strings.TrimPrefix(k, p)
		}
		stripped[k] = v
	}
	if detectLayout(stripped) == layoutTorchvision {
		return fromTorchvision(stripped)
	}
	return stripped
}

// fromTorchvision renames torchvision 0.14's VisionTransformer keys.
func fromTorchvision(sd map[string]*ts.Tensor) map[string]*ts.Tensor {
	out := make(map[string]*ts.Tensor, len(sd))
	for k, v := range sd {
		out[torchvisionToTimm(k)] = v
	}
	return out
}

func torchvisionToTimm(k string) string {
	switch k {
	case "class_token":
		return "cls_token"
	case "conv_proj.weight":
		return "patch_embed.proj.weight"
	case "conv_proj.bias":
		return "patch_embed.proj.bias"
	case "encoder.pos_embedding":
		return "pos_embed"
	case "encoder.ln.weight":
		return "norm.weight"
	case "encoder.ln.bias":
		return "norm.bias"
	case "heads.head.weight":
		return "head.weight"
	case "heads.head.bias":
		return "head.bias"
	}
	const layer = "encoder.layers.encoder_layer_"
	if !strings.HasPrefix(k, layer) {
		return k
	}
	rest := k[len(layer):]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return k
	}
	idx, field := rest[:dot], rest[dot+1:]
	repl := map[string]string{
		"ln_1.weight":                    "norm1.weight",
		"ln_1.bias":                      "norm1.bias",
		"self_attention.in_proj_weight":  "attn.qkv.weight",
		"self_attention.in_proj_bias":    "attn.qkv.bias",
		"self_attention.out_proj.weight": "attn.proj.weight",
		"self_attention.out_proj.bias":   "attn.proj.bias",
		"ln_2.weight":                    "norm2.weight",
		"ln_2.bias":                      "norm2.bias",
		"mlp.0.weight":                   "mlp.fc1.weight",
		"mlp.0.bias":                     "mlp.fc1.bias",
		"mlp.3.weight":                   "mlp.fc2.weight",
		"mlp.3.bias":                     "mlp.fc2.bias",
		"mlp.linear_1.weight":            "mlp.fc1.weight",
		"mlp.linear_1.bias":              "mlp.fc1.bias",
		"mlp.linear_2.weight":            "mlp.fc2.weight",
		"mlp.linear_2.bias":              "mlp.fc2.bias",
	}
	if r, ok := repl[field]; ok {
		return "blocks." + idx + "." + r
	}
	return k
}

// KeyError lists what did not match when loading a state dict.
type KeyError struct {
	Missing    []string // in the model, not in the checkpoint
	Unexpected []string // in the checkpoint, not in the model
	Mismatched []string // "name: checkpoint [a b] vs model [c d]"
}

func (e *KeyError) Error() string {
	var parts []string
	list := func(what string, keys []string) {
		if len(keys) == 0 {
			return
		}
		shown := keys
		if len(shown) > 12 {
			shown = append(append([]string{}, shown[:12]...), fmt.Sprintf("... %d more", len(keys)-12))
		}
		parts = append(parts, fmt.Sprintf("%d %s: %s", len(keys), what, strings.Join(shown, ", ")))
	}
	list("missing keys", e.Missing)
	list("unexpected keys", e.Unexpected)
	list("mis-shaped keys", e.Mismatched)
	return "checkpoint does not fit the model: " + strings.Join(parts, "; ")
}

// LoadStateDict copies a timm-named state dict into the model's tensors.
// Nothing is copied unless every key matches in name and shape.
func (m *Model) LoadStateDict(sd map[string]*ts.Tensor) error {
	vars := m.VS.Variables()
	ke := &KeyError{}
	for name, v := range vars {
		src, ok := sd[name]
		if !ok {
			ke.Missing = append(ke.Missing, name)
			continue
		}
		if a, b := src.MustSize(), v.MustSize(); !reflect.DeepEqual(a, b) {
			ke.Mismatched = append(ke.Mismatched, fmt.Sprintf("%s: checkpoint %v vs model %v", name, a, b))
		}
	}
	for name := range sd {
		if _, ok := vars[name]; !ok {
			ke.Unexpected = append(ke.Unexpected, name)
		}
	}
	if len(ke.Missing)+len(ke.Unexpected)+len(ke.Mismatched) > 0 {
		sort.Strings(ke.Missing)
		sort.Strings(ke.Unexpected)
		sort.Strings(ke.Mismatched)
		return ke
	}
	torchrt.NoGrad(func() {
		for name := range vars {
			dst, _ := m.VS.Root().Get(name)
			src := sd[name].MustTo(m.VS.Device(), false).MustTotype(dst.DType(), true)
			dst.Copy_(src)
			src.MustDrop()
		}
	})
	return nil
}

// LoadPyTorch reads a timm- or torchvision-named .pth/.pt file into the
// model.
func (m *Model) LoadPyTorch(path string) error {
	sd, err := readStateDict(path)
	if err != nil {
		return err
	}
	sd = filterCheckpoint(sd)
	defer func() {
		for _, t := range sd {
			t.MustDrop()
		}
	}()
	if err := m.LoadStateDict(sd); err != nil {
		return fmt.Errorf("load %s into %s: %w", path, m.Cfg.Name, err)
	}
	return nil
}

// Save writes the model's tensors (gotch's format, timm names) to path and
// its configuration to path + ".json", so Load rebuilds it exactly.
func (m *Model) Save(path string) error {
	cfg, err := json.MarshalIndent(m.Cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := m.VS.Save(path); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return os.WriteFile(path+".json", cfg, 0o644)
}

// Load rebuilds a model saved by Save on the given device.
func Load(path string, dev gotch.Device) (*Model, error) {
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		return nil, fmt.Errorf("load model config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("load model config %s.json: %w", path, err)
	}
	m, err := New(cfg, dev)
	if err != nil {
		return nil, err
	}
	named, err := ts.LoadMultiWithDevice(path, dev)
	if err != nil {
		m.Drop()
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	sd := make(map[string]*ts.Tensor, len(named))
	for _, nt := range named {
		sd[nt.Name] = nt.Tensor
	}
	defer func() {
		for _, t := range sd {
			t.MustDrop()
		}
	}()
	if err := m.LoadStateDict(sd); err != nil {
		m.Drop()
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	m.RecoverMasks()
	return m, nil
}

// RecoverMasks rebuilds unstructured-pruning masks from zero weights, for
// layers that are at least 1% zeros.
func (m *Model) RecoverMasks() {
	torchrt.NoGrad(func() {
		for _, l := range m.Linears() {
			if l.Weight == nil {
				continue
			}
			nz := countNonZero(l.Weight)
			if total := int64(l.Weight.Numel()); float64(total-nz) >= 0.01*float64(total) {
				l.Mask = l.Weight.MustNe(ts.FloatScalar(0), false).MustTotype(gotch.Float, true)
			}
		}
	})
}
