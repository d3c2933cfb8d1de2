package config

import (
	"strconv"
	"strings"
)

// keyPath is a full key as the user reads it in an error: components are
// rendered already (bare or quoted), array indices are components of their
// own ("[2]"), so "experiment", "[2]", "pipeline", "[0]", "weight_bits"
// prints as experiment[2].pipeline[0].weight_bits.
type keyPath []string

// key returns p extended by the table key k.
func (p keyPath) key(k string) keyPath {
	return append(p[:len(p):len(p)], renderKey(k))
}

// keys returns p extended by several table keys (a dotted key).
func (p keyPath) keys(ks []string) keyPath {
	for _, k := range ks {
		p = p.key(k)
	}
	return p
}

// index returns p extended by an array index.
func (p keyPath) index(i int) keyPath {
	return append(p[:len(p):len(p)], "["+strconv.Itoa(i)+"]")
}

func (p keyPath) String() string {
	var b strings.Builder
	for i, c := range p {
		if i > 0 && !strings.HasPrefix(c, "[") {
			b.WriteByte('.')
		}
		b.WriteString(c)
	}
	return b.String()
}

// renderKey writes a key bare when TOML allows it and quoted otherwise, so
// that a rendered quoted key never looks like an array index.
func renderKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(k)
		}
	}
	return k
}

// lineIndex maps every key of a TOML document (tables, array-of-tables
// elements, dotted keys, keys of inline tables, array elements) to the line
// it is first written on, and remembers the order keys appear in.
// BurntSushi/toml reports positions only for syntax errors, so the index is
// built by a light scan of the source, run only on documents that parsed.
type lineIndex struct {
	line map[string]int
	seq  map[string]int
}

// lineOf returns the line of p, or of its nearest ancestor that is written
// in the file (a key that was not given is reported at its table), or 0.
func (x *lineIndex) lineOf(p keyPath) int {
	for n := len(p); n > 0; n-- {
		if l, ok := x.line[p[:n].String()]; ok {
			return l
		}
	}
	return 0
}

// order returns the position of p among the keys of the file, for sorting
// keys into the order they were written; unknown keys sort last.
func (x *lineIndex) order(p keyPath) int {
	if s, ok := x.seq[p.String()]; ok {
		return s
	}
	return int(^uint(0) >> 1)
}

// indexLines scans src, a document that toml.Decode accepted.
func indexLines(src string) *lineIndex {
	s := &scanner{
		src: src,
		ln:  1,
		idx: &lineIndex{line: map[string]int{}, seq: map[string]int{}},
		aot: map[string]int{},
	}
	s.document()
	return s.idx
}

type scanner struct {
	src string
	pos int
	ln  int
	idx *lineIndex
	aot map[string]int // array-of-tables path -> elements seen so far
}

func (s *scanner) eof() bool  { return s.pos >= len(s.src) }
func (s *scanner) peek() byte { return s.src[s.pos] }

func (s *scanner) advance() {
	if s.src[s.pos] == '\n' {
		s.ln++
	}
	s.pos++
}

// record notes the line of p and of every prefix not seen before.
func (s *scanner) record(p keyPath, line int) {
	for n := 1; n <= len(p); n++ {
		k := p[:n].String()
		if _, ok := s.idx.line[k]; !ok {
			s.idx.line[k] = line
			s.idx.seq[k] = len(s.idx.seq)
		}
	}
}

func (s *scanner) document() {
	var table keyPath
	for !s.eof() {
		start := s.pos
		s.skipSpace()
		if s.eof() {
			return
		}
		switch c := s.peek(); {
		case c == '\n' || c == '\r':
			s.advance()
		case c == '#':
			s.skipComment()
		case c == '[':
			aot := strings.HasPrefix(s.src[s.pos:], "[[")
			line := s.ln
			if aot {
				s.pos += 2
			} else {
				s.pos++
			}
			table = s.header(s.dottedKey(), aot)
			s.record(table, line)
			for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
				s.pos++ // the closing brackets and spaces
			}
		default:
			line := s.ln
			p := table.keys(s.dottedKey())
			s.record(p, line)
			s.skipSpace()
			if !s.eof() && s.peek() == '=' {
				s.pos++
			}
			s.skipSpace()
			s.value(p)
		}
		if s.pos == start {
			s.advance() // never loop on input the scanner does not understand
		}
	}
}

// header resolves a table header to its full path: a parent that is an
// array of tables refers to its last element; a [[header]] opens a new one.
func (s *scanner) header(keys []string, aot bool) keyPath {
	var p keyPath
	for i, k := range keys {
		p = p.key(k)
		name := p.String()
		if aot && i == len(keys)-1 {
			s.aot[name]++
			p = p.index(s.aot[name] - 1)
		} else if n, ok := s.aot[name]; ok {
			p = p.index(n - 1)
		}
	}
	return p
}

// value skips one value, recording the elements of arrays and the keys of
// inline tables below p.
func (s *scanner) value(p keyPath) {
	if s.eof() {
		return
	}
	switch s.peek() {
	case '"', '\'':
		s.skipString()
	case '[':
		s.pos++
		for i := 0; ; i++ {
			s.skipBlank()
			if s.eof() {
				return
			}
			if s.peek() == ']' {
				s.pos++
				return
			}
			start := s.pos
			el := p.index(i)
			s.record(el, s.ln)
			s.value(el)
			s.skipBlank()
			if !s.eof() && s.peek() == ',' {
				s.pos++
			}
			if s.pos == start {
				s.advance()
			}
		}
	case '{':
		s.pos++
		for {
			s.skipBlank()
			if s.eof() {
				return
			}
			if s.peek() == '}' {
				s.pos++
				return
			}
			start := s.pos
			line := s.ln
			kp := p.keys(s.dottedKey())
			s.record(kp, line)
			s.skipSpace()
			if !s.eof() && s.peek() == '=' {
				s.pos++
			}
			s.skipSpace()
			s.value(kp)
			s.skipBlank()
			if !s.eof() && s.peek() == ',' {
				s.pos++
			}
			if s.pos == start {
				s.advance()
			}
		}
	default:
		for !s.eof() && !strings.ContainsRune(",]}\r\n#", rune(s.peek())) {
			s.pos++
		}
	}
}

// dottedKey reads a key such as a."b.c".d and returns its pieces unquoted.
func (s *scanner) dottedKey() []string {
	var keys []string
	for {
		s.skipSpace()
		if s.eof() {
			return keys
		}
		switch s.peek() {
		case '"', '\'':
			start := s.pos
			s.skipString()
			raw := s.src[start:s.pos]
			if raw[0] == '\'' {
				keys = append(keys, strings.Trim(raw, "'"))
			} else if k, err := strconv.Unquote(raw); err == nil {
				keys = append(keys, k)
			} else {
				keys = append(keys, strings.Trim(raw, `"`))
			}
		default:
			start := s.pos
			for !s.eof() && !strings.ContainsRune(" \t.=]\r\n", rune(s.peek())) {
				s.pos++
			}
			keys = append(keys, s.src[start:s.pos])
		}
		s.skipSpace()
		if s.eof() || s.peek() != '.' {
			return keys
		}
		s.pos++
	}
}

// skipString skips a basic, literal or multi-line string.
func (s *scanner) skipString() {
	q := s.peek()
	triple := strings.Repeat(string(q), 3)
	if strings.HasPrefix(s.src[s.pos:], triple) {
		s.pos += 3
		for !s.eof() {
			if q == '"' && s.peek() == '\\' {
				s.pos++
				if !s.eof() {
					s.advance()
				}
				continue
			}
			if strings.HasPrefix(s.src[s.pos:], triple) {
				s.pos += 3
				for i := 0; i < 2 && !s.eof() && s.peek() == q; i++ {
					s.pos++ // up to two quotes may end the content
				}
				return
			}
			s.advance()
		}
		return
	}
	s.pos++
	for !s.eof() {
		c := s.peek()
		switch {
		case c == q:
			s.pos++
			return
		case c == '\\' && q == '"':
			s.pos++
		case c == '\n':
			return // not valid TOML; stop at the line end
		}
		if !s.eof() {
			s.pos++
		}
	}
}

func (s *scanner) skipSpace() {
	for !s.eof() && (s.peek() == ' ' || s.peek() == '\t') {
		s.pos++
	}
}

func (s *scanner) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.pos++
	}
}

// skipBlank skips spaces, newlines and comments, as allowed inside arrays
// (and, since TOML 1.1, inline tables).
func (s *scanner) skipBlank() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.advance()
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}
