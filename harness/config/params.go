package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/vitbench/vitbench/techniques"
)

// Referencer is implemented by a technique Config whose parameters name
// other models or experiments of the suite, e.g. a distillation stage's
// teacher. The loader checks that every name is declared and that the
// references form no cycle; package plan hashes the referenced artifacts
// into the stage's own.
type Referencer interface {
	References() []string
}

// Setting is one parameter of a stage with its value.
type Setting struct {
	Key   string
	Value any
}

// Point is one grid point of a stage: a decoded, validated Config and the
// values of the swept parameters that chose it (as TOML decoded them), in
// the order they were written.
type Point struct {
	Config techniques.Config
	Swept  []Setting
}

// Expand decodes the stage once per grid point: the cartesian product of
// its swept parameters, in the order written, the last varying fastest.
// A stage without swept parameters has one point. Errors are an ErrorList.
func (s *Stage) Expand() ([]Point, error) {
	pts, errs := s.expand()
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return pts, nil
}

// Settings lists the parameters of a technique Config (a pointer to a
// struct with toml tags), in field order, with their current values.
func Settings(c techniques.Config) []Setting {
	rv := reflect.ValueOf(c)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil
	}
	rv = rv.Elem()
	var out []Setting
	for _, f := range configFields(rv.Type()) {
		out = append(out, Setting{Key: f.key, Value: rv.FieldByIndex(f.index).Interface()})
	}
	return out
}

type configField struct {
	key   string
	index []int
	typ   reflect.Type
}

// configFields lists the settable parameters of a Config struct type, the
// way BurntSushi/toml sees them: exported fields named by their toml tag
// (or their Go name), embedded structs flattened, `toml:"-"` skipped.
func configFields(t reflect.Type) []configField {
	var out []configField
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, configField{key: name, index: f.Index, typ: f.Type})
	}
	return out
}

func (s *Stage) expand() ([]Point, ErrorList) {
	var errs ErrorList
	stageErr := func(format string, args ...any) {
		errs = append(errs, &Error{File: s.File, Line: s.Line, Key: s.Key, Msg: fmt.Sprintf(format, args...)})
	}
	tech := s.tech
	if tech.NewConfig == nil {
		t, err := techniques.Lookup(s.Technique)
		if err != nil {
			stageErr("%v", err)
			return nil, errs
		}
		tech = t
	}
	proto := tech.NewConfig()
	pv := reflect.ValueOf(proto)
	if pv.Kind() != reflect.Pointer || pv.Elem().Kind() != reflect.Struct {
		stageErr("technique %s: NewConfig returns %T, not a pointer to a struct", tech.Name, proto)
		return nil, errs
	}
	fields := configFields(pv.Elem().Type())
	byKey := map[string]configField{}
	var known []string
	for _, f := range fields {
		byKey[f.key] = f
		known = append(known, f.key)
	}

	type dim struct {
		field  configField
		param  Param
		values []any // the alternatives, each checked to fit the field
	}
	var dims []dim
	for _, p := range s.Params {
		key := s.Key + "." + renderKey(p.Key)
		f, ok := byKey[p.Key]
		if newKey, renamed := tech.Renamed[p.Key]; renamed {
			errs = append(errs, &Error{File: s.File, Line: p.Line, Key: key,
				Msg: fmt.Sprintf("renamed: technique %s now spells it %s (every fine-tune shares the keys of techniques.FineTune)", tech.Name, newKey)})
			continue
		}
		if !ok {
			errs = append(errs, &Error{File: s.File, Line: p.Line, Key: key,
				Msg: fmt.Sprintf("unknown parameter of technique %s (known: %s)", tech.Name, strings.Join(known, ", "))})
			continue
		}
		alts := []any{p.Value}
		if p.Swept {
			alts = p.Value.([]any)
			if len(alts) == 0 {
				errs = append(errs, &Error{File: s.File, Line: p.Line, Key: key, Msg: "empty list: nothing to sweep"})
				continue
			}
		}
		d := dim{field: f, param: p}
		for i, a := range alts {
			v := reflect.New(f.typ).Elem()
			if err := assign(v, a); err != nil {
				ek, line := key, p.Line
				if p.Swept {
					ek = fmt.Sprintf("%s[%d]", key, i)
					if i < len(p.elemLines) {
						line = p.elemLines[i]
					}
				}
				errs = append(errs, &Error{File: s.File, Line: line, Key: ek, Msg: err.Error()})
				continue
			}
			d.values = append(d.values, a)
		}
		dims = append(dims, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}

	n := 1
	for _, d := range dims {
		n *= len(d.values)
		if n > MaxGrid {
			stageErr("the swept parameters make more than %d grid points", MaxGrid)
			return nil, errs
		}
	}

	// Validate failures are grouped by message, so that a bad value swept
	// against others is reported once, not once per grid point.
	type failure struct {
		where, msg string
		count      int
	}
	var failures []*failure
	byMsg := map[string]*failure{}
	points := make([]Point, 0, n)
	at := make([]int, len(dims))
	for range n {
		cfg := tech.NewConfig()
		cv := reflect.ValueOf(cfg).Elem()
		var swept []Setting
		var err error
		for i, d := range dims {
			// Decoded afresh for every point, so that no two Configs
			// share a slice or map.
			if e := assign(cv.FieldByIndex(d.field.index), d.values[at[i]]); e != nil && err == nil {
				err = fmt.Errorf("%s: %w", d.param.Key, e)
			}
			if d.param.Swept {
				swept = append(swept, Setting{Key: d.param.Key, Value: d.values[at[i]]})
			}
		}
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			// Each problem on its own: a bad value swept against others
			// is one line, however many points it spoils.
			msgs := []string{err.Error()}
			var inv *techniques.InvalidError
			if errors.As(err, &inv) {
				msgs = msgs[:0]
				for _, p := range inv.Problems {
					msgs = append(msgs, fmt.Sprintf("%v of %s: %s", techniques.ErrInvalid, inv.Technique, p))
				}
			}
			for _, msg := range msgs {
				f := byMsg[msg]
				if f == nil {
					f = &failure{where: describeSwept(swept), msg: msg}
					byMsg[f.msg] = f
					failures = append(failures, f)
				}
				f.count++
			}
		} else {
			points = append(points, Point{Config: cfg, Swept: swept})
		}
		for i := len(at) - 1; i >= 0; i-- {
			if at[i]++; at[i] < len(dims[i].values) {
				break
			}
			at[i] = 0
		}
	}
	for _, f := range failures {
		switch {
		case f.where == "":
			stageErr("%s", f.msg)
		case f.count == 1:
			stageErr("with %s: %s", f.where, f.msg)
		default:
			stageErr("at %d grid points, first with %s: %s", f.count, f.where, f.msg)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return points, nil
}

func describeSwept(swept []Setting) string {
	parts := make([]string, len(swept))
	for i, s := range swept {
		parts[i] = s.Key + "=" + FormatValue(s.Value)
	}
	return strings.Join(parts, ", ")
}

// FormatValue writes a parameter value the way a user would type it in a
// label: strings bare, numbers in their shortest form, lists in brackets.
func FormatValue(v any) string {
	rv := reflect.ValueOf(v)
	switch {
	case v == nil:
		return "none"
	case rv.Kind() == reflect.String:
		return rv.String()
	case rv.Kind() == reflect.Float32 || rv.Kind() == reflect.Float64:
		return fmt.Sprintf("%g", rv.Float())
	case (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) && rv.Type().Elem().Kind() != reflect.Uint8:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = FormatValue(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(v)
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// assign stores a value decoded by TOML into dst, converting numbers and
// checking types and ranges as BurntSushi/toml would.
func assign(dst reflect.Value, v any) error {
	if v == nil {
		return fmt.Errorf("want %s, got nothing", want(dst.Type()))
	}
	sv := reflect.ValueOf(v)
	if sv.Type().AssignableTo(dst.Type()) {
		dst.Set(sv)
		return nil
	}
	if s, ok := v.(string); ok && reflect.PointerTo(dst.Type()).Implements(textUnmarshaler) {
		if err := dst.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("invalid value %q: %v", s, err)
		}
		return nil
	}
	bad := func() error { return fmt.Errorf("want %s, got %s", want(dst.Type()), describe(v)) }
	switch dst.Kind() {
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return bad()
		}
		dst.SetBool(b)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		dst.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := v.(int64)
		if !ok {
			return bad()
		}
		if dst.OverflowInt(i) {
			return fmt.Errorf("%d is out of range for %s", i, dst.Type())
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := v.(int64)
		if !ok {
			return bad()
		}
		if i < 0 || dst.OverflowUint(uint64(i)) {
			return fmt.Errorf("%d is out of range for %s", i, dst.Type())
		}
		dst.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		f, ok := toFloat(v)
		if !ok {
			return bad()
		}
		if dst.OverflowFloat(f) {
			return fmt.Errorf("%g is out of range for %s", f, dst.Type())
		}
		dst.SetFloat(f)
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return bad()
		}
		s := reflect.MakeSlice(dst.Type(), len(list), len(list))
		for i, e := range list {
			if err := assign(s.Index(i), e); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		dst.Set(s)
	case reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return bad()
		}
		if len(list) != dst.Len() {
			return fmt.Errorf("want %d elements, got %d", dst.Len(), len(list))
		}
		for i, e := range list {
			if err := assign(dst.Index(i), e); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := assign(p.Elem(), v); err != nil {
			return err
		}
		dst.Set(p)
	case reflect.Interface:
		if !sv.Type().Implements(dst.Type()) {
			return bad()
		}
		dst.Set(sv)
	case reflect.Map, reflect.Struct:
		if _, ok := v.(map[string]any); !ok {
			return bad()
		}
		return assignTable(dst, v)
	default:
		return fmt.Errorf("parameters of Go type %s are not supported", dst.Type())
	}
	return nil
}

// assignTable decodes a TOML table into a struct or map field by handing
// it back to BurntSushi/toml; keys the field does not know are errors.
func assignTable(dst reflect.Value, v any) error {
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"v": v}); err != nil {
		return fmt.Errorf("re-encode table: %w", err)
	}
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: dst.Type(), Tag: `toml:"v"`}}))
	md, err := toml.Decode(buf.String(), holder.Interface())
	if err != nil {
		return fmt.Errorf("want %s: %v", want(dst.Type()), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = strings.TrimPrefix(k.String(), "v.")
		}
		return fmt.Errorf("unknown keys %s", strings.Join(keys, ", "))
	}
	dst.Set(holder.Elem().Field(0))
	return nil
}

// want names the TOML type a Go type takes, for error messages.
func want(t reflect.Type) string {
	if t == reflect.TypeFor[time.Time]() {
		return "a datetime"
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(want(t.Elem()), "a "), "an ") + "s"
	case reflect.Pointer:
		return want(t.Elem())
	case reflect.Map, reflect.Struct:
		return "a table"
	}
	return t.String()
}

// describe names a TOML-decoded value for error messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %g", x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a datetime"
	}
	return fmt.Sprintf("%T", v)
}

// sweptValue reports whether a parameter value is a list of alternatives
// for a field of type t: a list where t is not a list; where t is a list
// (of depth n: []T is 1, [][]T is 2), a list whose elements are all lists
// of depth n.
func sweptValue(t reflect.Type, v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	depth := 0
	for {
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
			continue
		case reflect.Slice, reflect.Array:
			depth++
			t = t.Elem()
			continue
		case reflect.Interface:
			if depth == 0 {
				return false // any value fits: nothing to expand
			}
		}
		break
	}
	if depth == 0 {
		return true
	}
	if len(list) == 0 {
		return false
	}
	for _, e := range list {
		if _, isList := e.([]any); !isList || listDepth(e) < depth {
			return false
		}
	}
	return true
}

// listDepth returns how deeply v nests lists; an empty list fits any depth.
func listDepth(v any) int {
	list, ok := v.([]any)
	if !ok {
		return 0
	}
	if len(list) == 0 {
		return math.MaxInt32
	}
	d := math.MaxInt32
	for _, e := range list {
		d = min(d, listDepth(e))
	}
	return 1 + d
}

// toFloat is a TOML number as a float64: TOML decodes integers as int64.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
