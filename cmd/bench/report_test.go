package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/reports"
)

// fakeEChartsAssets makes an assets folder with a stand-in script.
func fakeEChartsAssets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, reports.EChartsScript), []byte("var echarts;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReportMergesDatabases(t *testing.T) {
	a, _ := resultsDB(t, "laptop-a")
	b, _ := resultsDB(t, "server-b")
	stats := map[string]os.FileInfo{}
	for _, p := range []string{a, b} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		stats[p] = fi
	}
	out := filepath.Join(t.TempDir(), "site")
	var stdout, stderr bytes.Buffer
	err := Main(context.Background(), []string{"report", "--db", a, "--db", b, "--out", out, "--assets", fakeEChartsAssets(t)}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("report: %v\n%s", err, stderr.String())
	}
	index := filepath.Join(out, reports.IndexPage)
	if got := strings.TrimSpace(stdout.String()); got != index {
		t.Errorf("stdout = %q, want the index path %q", got, index)
	}
	machines, err := os.ReadFile(filepath.Join(out, "machines.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"laptop-a", "server-b"} {
		if !bytes.Contains(machines, []byte(host)) {
			t.Errorf("machines.html lacks %s: the databases were not merged", host)
		}
	}
	if _, err := os.Stat(filepath.Join(out, reports.EChartsScript)); err != nil {
		t.Errorf("the echarts script was not copied: %v", err)
	}
	// The databases are read, never written.
	for p, before := range stats {
		after, err := os.Stat(p)
		if err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
			t.Errorf("%s changed by a report (err %v)", p, err)
		}
	}
}

func TestReportErrors(t *testing.T) {
	db, _ := resultsDB(t, "host")
	assets := fakeEChartsAssets(t)
	tests := []struct {
		name  string
		args  []string
		usage bool   // bad input: exit status 2
		want  string // in the error
	}{
		{"unknown flag", []string{"--bogus"}, true, "bogus"},
		{"extra argument", []string{"--db", db, "x.toml"}, true, `unexpected argument "x.toml"`},
		{"empty db", []string{"--db", ""}, true, "empty path"},
		{"empty out", []string{"--db", db, "--out", ""}, true, "--out is empty"},
		{"missing database", []string{"--db", filepath.Join(t.TempDir(), "none.db"), "--assets", assets}, true, "does not exist"},
		{"missing assets", []string{"--db", db, "--out", t.TempDir(), "--assets", filepath.Join(t.TempDir(), "no-assets")}, false, "scripts/assets.sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runReport(context.Background(), tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("no error")
			}
			var ue usageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tt.usage, tt.usage, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if err := runReport(context.Background(), []string{"-h"}, &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), "usage: bench report") {
		t.Errorf("-h: err %v, usage %q", err, stderr.String())
	}
}
