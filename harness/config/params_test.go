package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// level is a parameter type that decodes itself from a string.
type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return fmt.Errorf("want low or high")
	}
	return nil
}

type allKinds struct {
	I8    int8              `toml:"i8"`
	U     uint              `toml:"u"`
	F32   float32           `toml:"f32"`
	B     bool              `toml:"b"`
	P     *int              `toml:"p"`
	Arr   [2]int            `toml:"arr"`
	Level level             `toml:"level"`
	Any   any               `toml:"any"`
	Map   map[string]int    `toml:"map"`
	Sub   struct{ X int }   `toml:"sub"`
	Nest  [][]float64       `toml:"nest"`
	Strs  []string          `toml:"strs"`
	Named map[string]string `toml:"named"`
}

func TestAssign(t *testing.T) {
	tests := []struct {
		key  string
		v    any
		want any    // the field's value after assign
		err  string // fragment of the error, "" for none
	}{
		{"i8", int64(-5), int8(-5), ""},
		{"i8", int64(300), nil, "300 is out of range for int8"},
		{"i8", 1.0, nil, "want an integer, got float 1"},
		{"u", int64(7), uint(7), ""},
		{"u", int64(-1), nil, "-1 is out of range for uint"},
		{"f32", int64(3), float32(3), ""},
		{"f32", 1e300, nil, "out of range for float32"},
		{"f32", "1", nil, `want a number, got string "1"`},
		{"b", true, true, ""},
		{"b", int64(1), nil, "want a boolean, got integer 1"},
		{"p", int64(4), func() *int { i := 4; return &i }(), ""},
		{"arr", []any{int64(1), int64(2)}, [2]int{1, 2}, ""},
		{"arr", []any{int64(1)}, nil, "want 2 elements, got 1"},
		{"level", "high", level(2), ""},
		{"level", "mid", nil, `invalid value "mid": want low or high`},
		{"level", int64(2), level(2), ""}, // an integer kind takes integers too
		{"any", []any{"x"}, []any{"x"}, ""},
		{"map", map[string]any{"a": int64(1)}, map[string]int{"a": 1}, ""},
		{"map", map[string]any{"a": "x"}, nil, "want a table"},
		{"sub", map[string]any{"X": int64(3)}, struct{ X int }{3}, ""},
		{"sub", map[string]any{"Y": int64(3)}, nil, "unknown keys Y"},
		{"sub", int64(3), nil, "want a table, got integer 3"},
		{"nest", []any{[]any{1.5}, []any{}}, [][]float64{{1.5}, {}}, ""},
		{"nest", []any{[]any{"x"}}, nil, `element 0: element 0: want a number, got string "x"`},
		{"strs", "one", nil, `want an array of strings, got string "one"`},
		{"named", nil, nil, "want a table, got nothing"},
	}
	fields := map[string]configField{}
	for _, f := range configFields(reflect.TypeFor[allKinds]()) {
		fields[f.key] = f
	}
	for _, tt := range tests {
		f := fields[tt.key]
		dst := reflect.New(f.typ).Elem()
		err := assign(dst, tt.v)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s = %v: %v", tt.key, tt.v, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s = %v: error %v, want %q", tt.key, tt.v, err, tt.err)
		case tt.err == "" && !reflect.DeepEqual(dst.Interface(), tt.want):
			t.Errorf("%s = %v: got %#v, want %#v", tt.key, tt.v, dst.Interface(), tt.want)
		}
	}
}

func TestSweptValue(t *testing.T) {
	tests := []struct {
		key  string
		v    any
		want bool
	}{
		{"i8", int64(1), false},
		{"i8", []any{int64(1), int64(2)}, true},
		{"p", []any{int64(1)}, true},
		{"strs", []any{"a", "b"}, false},
		{"strs", []any{[]any{"a"}, []any{"b"}}, true},
		{"strs", []any{}, false},
		{"strs", []any{[]any{"a"}, "b"}, false},
		{"nest", []any{[]any{1.0}}, false},
		{"nest", []any{[]any{[]any{1.0}}}, true},
		{"any", []any{int64(1)}, false},
		{"nest", []any{[]any{[]any{1.0}}, []any{}}, true},
		{"nest", []any{[]any{}}, true},
	}
	fields := map[string]configField{}
	for _, f := range configFields(reflect.TypeFor[allKinds]()) {
		fields[f.key] = f
	}
	for _, tt := range tests {
		if got := sweptValue(fields[tt.key].typ, tt.v); got != tt.want {
			t.Errorf("sweptValue(%s, %v) = %t, want %t", tt.key, tt.v, got, tt.want)
		}
	}
}

func TestConfigFields(t *testing.T) {
	type Embedded struct {
		Shared int `toml:"shared"`
	}
	type cfg struct {
		Embedded
		Own    int `toml:"own,omitempty"`
		NoTag  int
		Skip   int `toml:"-"`
		hidden int
	}
	var keys []string
	for _, f := range configFields(reflect.TypeFor[cfg]()) {
		keys = append(keys, f.key)
	}
	if want := []string{"shared", "own", "NoTag"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{"omse", "omse"},
		{int64(8), "8"},
		{0.25, "0.25"},
		{1e-5, "1e-05"},
		{true, "true"},
		{[]string{"qkv", "fc1"}, "[qkv,fc1]"},
		{[]any{[]any{int64(1)}, 2.5}, "[[1],2.5]"},
		{nil, "none"},
	}
	for _, tt := range tests {
		if got := FormatValue(tt.v); got != tt.want {
			t.Errorf("FormatValue(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
