package config

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLineIndex(t *testing.T) {
	const src = `# a comment with [brackets] and key = "value"
[suite]
name = "x" # trailing [comment]
description = """
[not.a.table]
key = 1
"""
include = [
  "a.toml",   # first
  'b.toml',
]

[models.vit]
arch.base = "deit"
arch.depth = 6
"data" = { name = "cifar10",
           train_size = 100 }

[models."odd.name"]
train = { lr = 1e-3, label = "say \"}\" [x]" }

[[experiment]]
name = "a"
pipeline = [
  { technique = "q", weight_bits = [8,
                                     4] },
  {technique="p",amount=0.5},
]

[[experiment]]
name = "b"
[experiment.extra]
x = 1

[[experiment.pipeline]]
technique = "q"

[[experiment.pipeline]]
technique = "p"
nested = [[1, 2], [3]]
`
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		t.Fatalf("test document does not parse: %v", err)
	}
	x := indexLines(src)
	tests := []struct {
		key  string
		line int
	}{
		{"suite", 2},
		{"suite.name", 3},
		{"suite.description", 4},
		{"suite.include", 8},
		{"suite.include[0]", 9},
		{"suite.include[1]", 10},
		{"models", 13},
		{"models.vit", 13},
		{"models.vit.arch", 14},
		{"models.vit.arch.base", 14},
		{"models.vit.arch.depth", 15},
		{"models.vit.data", 16},
		{"models.vit.data.name", 16},
		{"models.vit.data.train_size", 17},
		{`models."odd.name"`, 19},
		{`models."odd.name".train.lr`, 20},
		{`models."odd.name".train.label`, 20},
		{"experiment[0]", 22},
		{"experiment[0].name", 23},
		{"experiment[0].pipeline", 24},
		{"experiment[0].pipeline[0]", 25},
		{"experiment[0].pipeline[0].technique", 25},
		{"experiment[0].pipeline[0].weight_bits[1]", 26},
		{"experiment[0].pipeline[1].amount", 27},
		{"experiment[1]", 30},
		{"experiment[1].name", 31},
		{"experiment[1].extra", 32},
		{"experiment[1].extra.x", 33},
		{"experiment[1].pipeline[0]", 35},
		{"experiment[1].pipeline[0].technique", 36},
		{"experiment[1].pipeline[1]", 38},
		{"experiment[1].pipeline[1].technique", 39},
		{"experiment[1].pipeline[1].nested[1][0]", 40},
	}
	for _, tt := range tests {
		if got, ok := x.line[tt.key]; !ok || got != tt.line {
			t.Errorf("line of %s = %d (present %t), want %d", tt.key, got, ok, tt.line)
		}
	}
	for _, bogus := range []string{"not", "not.a.table", "key", "experiment[2]", "suite.include[2]"} {
		if _, ok := x.line[bogus]; ok {
			t.Errorf("%s indexed, but it is not a key of the document", bogus)
		}
	}
	// A key that is not written is reported at its nearest written ancestor.
	if got := x.lineOf(keyPath{"models", "vit", "train", "lr"}); got != 13 {
		t.Errorf("lineOf(models.vit.train.lr) = %d, want 13 (its model)", got)
	}
	if x.order(keyPath{"suite", "name"}) > x.order(keyPath{"suite", "include"}) {
		t.Error("keys out of written order")
	}
}

func TestKeyPath(t *testing.T) {
	tests := []struct {
		p    keyPath
		want string
	}{
		{keyPath{}.key("experiment").index(2).key("pipeline").index(0).key("weight_bits"), "experiment[2].pipeline[0].weight_bits"},
		{keyPath{}.key("models").key("a.b").key("x y"), `models."a.b"."x y"`},
		{keyPath{}.key("x").index(1).index(0), "x[1][0]"},
		{keyPath{}.key("[0]"), `"[0]"`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}
