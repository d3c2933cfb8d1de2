package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables.
const (
	// envData lists directories to search for data sets, separated like
	// $PATH, after Options.Dirs.
	envData = "VITBENCH_DATA"
	// envDataCache overrides the default cache directory.
	envDataCache = "VITBENCH_DATA_CACHE"
)

// systemDatasets is where Debian's dataset packages install (for example
// dataset-fashion-mnist), searched last.
const systemDatasets = "/usr/share/datasets"

// errNotFound is wrapped by every *notFoundError.
var errNotFound = errors.New("data set not found")

// notFoundError reports a data set that is in none of the searched places.
type notFoundError struct {
	Name     string    // data set name as given
	Split    splitName // the split looked for
	Searched []string  // directories or paths looked in, in order
	Accepted []string  // layouts accepted under each searched directory
	Hint     string    // how to provide the files

	missing map[string]bool // searched paths that did not exist
}

// newNotFound returns a notFoundError, noting which searched paths exist.
func newNotFound(name string, split splitName, searched, accepted []string, hint string) *notFoundError {
	e := &notFoundError{Name: name, Split: split, Searched: searched, Accepted: accepted, Hint: hint, missing: map[string]bool{}}
	for _, d := range searched {
		if _, err := os.Stat(d); err != nil {
			e.missing[d] = true
		}
	}
	return e
}

func (e *notFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "data set %q (%s split) not found; searched, in order:", e.Name, e.Split)
	for _, d := range e.Searched {
		mark := ""
		if e.missing[d] {
			mark = " (does not exist)"
		}
		fmt.Fprintf(&b, "\n\t%s%s", d, mark)
	}
	if len(e.Accepted) > 0 {
		b.WriteString("\naccepted under each of them:")
		for _, a := range e.Accepted {
			fmt.Fprintf(&b, "\n\t%s", a)
		}
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\nto provide it: %s", e.Hint)
	}
	fmt.Fprintf(&b, "\nor add the directory that holds it to the search path (--data-dir, the suite's data dirs, or $%s)", envData)
	return b.String()
}

// Unwrap returns errNotFound.
func (e *notFoundError) Unwrap() error { return errNotFound }

// searchPath returns the directories searched for data sets, in order,
// absolute and without duplicates: opts.Dirs, then $VITBENCH_DATA, then
// (unless opts.NoDefaultDirs) ../shared/datasets and ../../shared/datasets
// relative to the working directory, to opts.SuiteDir and to the project
// root, and last /usr/share/datasets. Directories that do not exist are
// included; they are skipped when searching and marked in errors.
func searchPath(opts Options) []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(d string) {
		if d == "" {
			return
		}
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, d := range opts.Dirs {
		add(d)
	}
	for _, d := range filepath.SplitList(os.Getenv(envData)) {
		add(d)
	}
	if opts.NoDefaultDirs {
		return dirs
	}
	var bases []string
	wd, err := os.Getwd()
	if err == nil {
		bases = append(bases, wd)
	}
	if opts.SuiteDir != "" {
		bases = append(bases, opts.SuiteDir)
	}
	if root := projectRoot(); root != "" {
		bases = append(bases, root)
	}
	for _, b := range bases {
		add(filepath.Join(b, "..", "shared", "datasets"))
		add(filepath.Join(b, "..", "..", "shared", "datasets"))
	}
	add(systemDatasets)
	return dirs
}

// projectRoot returns the nearest directory at or above the working
// directory that holds a go.mod, or "".
func projectRoot() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && st.Mode().IsRegular() {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// defaultCacheDir returns where decoded data sets are cached when
// Options.CacheDir is empty: $VITBENCH_DATA_CACHE if set, else .cache/data
// under the project root (git-ignored), else the user cache directory.
func defaultCacheDir() string {
	if d := os.Getenv(envDataCache); d != "" {
		return d
	}
	if root := projectRoot(); root != "" {
		return filepath.Join(root, ".cache", "data")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "vitbench", "data")
	}
	return filepath.Join(os.TempDir(), "vitbench-data")
}

// isDir and isFile report what a path is, following links.
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// firstFile returns the first of the candidates that is a regular file.
func firstFile(candidates ...string) string {
	for _, c := range candidates {
		if isFile(c) {
			return c
		}
	}
	return ""
}
