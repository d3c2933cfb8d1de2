package plan

import (
	"fmt"
	"strconv"
	"strings"
)

// nameGrid names the experiments of one grid: the group name alone when
// nothing is swept, else group/values with one part per swept parameter
// in pipeline order, e.g. "ptq/w8-a4-omse":
//
//   - a string is written as itself ("omse");
//   - a number gets a short key in front ("w8" for weight_bits = 8);
//   - a boolean is its key or "no-" and its key ("per_channel", "no-per_channel");
//   - a list joins its elements with "_", after the key when they are not strings.
//
// Keys are shortened to their first letter, then to the initials of their
// words, then written in full, then prefixed by their technique and by
// their stage index, as far as needed to tell the swept parameters apart.
// Characters other than letters, digits, '.', '_' and '-' become '_', so
// names are safe in file names and URLs; names that still collide get a
// numeric suffix.
func nameGrid(group string, exps []*Experiment) {
	if len(exps) == 0 {
		return
	}
	if len(exps[0].Swept) == 0 {
		for _, e := range exps {
			e.Name = group
		}
		return
	}
	keys := keyLabels(exps[0].Swept)
	base := make([]string, len(exps))
	used := map[string]bool{}
	for i, e := range exps {
		parts := make([]string, len(e.Swept))
		for j, s := range e.Swept {
			parts[j] = sanitize(namePart(keys[j], s))
		}
		base[i] = group + "/" + strings.Join(parts, "-")
		used[base[i]] = true
	}
	taken := map[string]bool{}
	for i, e := range exps {
		name := base[i]
		for n := 2; taken[name]; n++ {
			if name = fmt.Sprintf("%s-%d", base[i], n); used[name] {
				name = base[i] // another grid point's own name: try the next
			}
		}
		taken[name] = true
		e.Name = name
	}
}

func namePart(key string, s Swept) string {
	switch v := s.Value.(type) {
	case string:
		return v
	case bool:
		if v {
			return key
		}
		return "no-" + key
	case []any:
		parts := make([]string, len(v))
		allStrings := true
		for i, e := range v {
			parts[i] = valueText(e)
			if _, ok := e.(string); !ok {
				allStrings = false
			}
		}
		if allStrings && len(v) > 0 {
			return strings.Join(parts, "_")
		}
		return key + strings.Join(parts, "_")
	}
	return key + valueText(s.Value)
}

func valueText(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = valueText(e)
		}
		return strings.Join(parts, "_")
	}
	return fmt.Sprint(v)
}

// keyLabels picks a label per swept parameter: as short as possible while
// distinct from the labels of the other swept parameters.
func keyLabels(swept []Swept) []string {
	level := make([]int, len(swept))
	for i, s := range swept {
		if _, ok := s.Value.(bool); ok {
			level[i] = 2 // booleans read as their full key
		}
	}
	label := func(i int) string {
		s := swept[i]
		switch level[i] {
		case 0:
			return s.Key[:1]
		case 1:
			var b strings.Builder
			for _, w := range strings.FieldsFunc(s.Key, func(r rune) bool { return r == '_' || r == '-' }) {
				b.WriteString(w[:1])
			}
			return b.String()
		case 2:
			return s.Key
		case 3:
			return s.Technique + "." + s.Key
		}
		return fmt.Sprintf("s%d.%s", s.Stage, s.Key)
	}
	for {
		labels := make([]string, len(swept))
		byLabel := map[string][]int{}
		for i, s := range swept {
			labels[i] = label(i)
			if _, isString := s.Value.(string); !isString {
				byLabel[labels[i]] = append(byLabel[labels[i]], i)
			}
		}
		clash := false
		for _, idx := range byLabel {
			if len(idx) < 2 {
				continue
			}
			for _, i := range idx {
				if level[i] < 4 {
					level[i]++
					clash = true
				}
			}
		}
		if !clash {
			return labels
		}
	}
}

// sanitize keeps letters, digits, '.', '_' and '-' and replaces the rest.
func sanitize(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
