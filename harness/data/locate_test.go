package data

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSearchPathOrder(t *testing.T) {
	a, b, c, suite := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv(envData, b+string(os.PathListSeparator)+c+string(os.PathListSeparator)+a)
	got := searchPath(Options{Dirs: []string{a, a + "/."}, SuiteDir: suite})
	wd, _ := os.Getwd()
	want := []string{a, b, c,
		filepath.Join(wd, "..", "shared", "datasets"),
		filepath.Join(wd, "..", "..", "shared", "datasets"),
		filepath.Join(suite, "..", "shared", "datasets"),
		filepath.Join(suite, "..", "..", "shared", "datasets"),
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("searchPath =\n%v\nwant it to start with\n%v", got, want)
	}
	if got[len(got)-1] != systemDatasets {
		t.Errorf("last entry %q, want %q", got[len(got)-1], systemDatasets)
	}
	if root := projectRoot(); root != "" && !slices.Contains(got, filepath.Join(root, "..", "shared", "datasets")) {
		t.Errorf("searchPath %v lacks the project root's ../shared/datasets", got)
	}
	if only := searchPath(Options{Dirs: []string{a}, NoDefaultDirs: true}); !slices.Equal(only, []string{a, b, c}) {
		t.Errorf("NoDefaultDirs: %v, want [%s %s %s]", only, a, b, c)
	}
}

func TestMissingData(t *testing.T) {
	empty, env := t.TempDir(), t.TempDir()
	gone := filepath.Join(empty, "gone")
	t.Setenv(envData, env)
	tests := []struct {
		name  string
		set   string
		opts  Options
		hints []string
	}{
		{"cifar10 nowhere", "cifar10", Options{Dirs: []string{empty, gone}, NoDefaultDirs: true},
			[]string{"cifar-10-binary.tar.gz", "cifar10-train-jpeg.tar.gz", cifar10URL, cifar10MD5, envData, "(does not exist)"}},
		{"mnist with default dirs", "mnist", Options{Dirs: []string{empty}},
			[]string{"mnist/train-{images-idx3,labels-idx1}-ubyte[.gz]", systemDatasets, "--data-dir"}},
		{"imagenet", "imagenet", Options{Dirs: []string{empty}, NoDefaultDirs: true},
			[]string{"imagenet/train/<class>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.CacheDir = t.TempDir()
			_, err := load(context.Background(), tt.set, trainSplit, tt.opts)
			var nf *notFoundError
			if !errors.As(err, &nf) || !errors.Is(err, errNotFound) {
				t.Fatalf("err = %v, want a *NotFoundError", err)
			}
			msg := err.Error()
			searched := searchPath(tt.opts)
			if !slices.Equal(nf.Searched, searched) {
				t.Errorf("searched %v, want %v", nf.Searched, searched)
			}
			for _, want := range append(searched, tt.hints...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not mention %q:\n%s", want, msg)
				}
			}
			if !slices.Contains(searched, env) {
				t.Errorf("$%s dir %s not searched", envData, env)
			}
		})
	}
	if _, err := load(context.Background(), "cifar100", trainSplit, Options{}); err == nil || !strings.Contains(err.Error(), "known: cifar10") {
		t.Errorf("unknown set: err = %v", err)
	}
	if _, err := load(context.Background(), "cifar10", "valid", Options{}); err == nil {
		t.Error("unknown split: no error")
	}
}

func TestFirstDirWins(t *testing.T) {
	// The same set in two directories: the earlier one on the path is used,
	// and within a directory the canonical binary beats the JPEG archive.
	first, second := t.TempDir(), t.TempDir()
	writeFiles(t, filepath.Join(first, "cifar10", "cifar-10-batches-bin"), writeFakeCIFARBinary(t))
	writeTarGz(t, filepath.Join(first, "cifar10", "cifar10-test-jpeg.tar.gz"), map[string][]byte{"test/airplane/x.png": nil})
	writeFiles(t, filepath.Join(second, "cifar-10-batches-bin"), map[string][]byte{"test_batch.bin": fakeCIFARRecords(0, 9)})
	s, err := load(context.Background(), "cifar10", testSplit, isolate(t, first, second))
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 4 {
		t.Errorf("%d images, want the 4 of the first directory's binary batch", s.N)
	}
	s, err = load(context.Background(), "CIFAR-10", testSplit, isolate(t, second, first))
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 9 {
		t.Errorf("%d images, want the 9 of the second directory", s.N)
	}
}
