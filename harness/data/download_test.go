package data

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDownload checks Download against a local server; nothing here
// reaches the internet.
func TestDownload(t *testing.T) {
	payload := []byte("pretend this is cifar-10-binary.tar.gz")
	sum := md5.Sum(payload)
	good := hex.EncodeToString(sum[:])
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(payload)
	}))
	defer srv.Close()
	ctx := context.Background()
	dir := t.TempDir()

	tests := []struct {
		name, path, md5, dest string
		wantErr               string
		wantHits              int32
	}{
		{"good", "/a", good, "ok/file.tar.gz", "", 1},
		{"already there", "/a", good, "ok/file.tar.gz", "", 0},
		{"checksum mismatch", "/a", strings.Repeat("0", 32), "bad/file.tar.gz", "md5 " + good, 1},
		{"http error", "/missing", good, "missing/file.tar.gz", "404", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			dest := filepath.Join(dir, tt.dest)
			err := Download(ctx, srv.Client(), srv.URL+tt.path, tt.md5, dest)
			if hits.Load() != tt.wantHits {
				t.Errorf("%d requests, want %d", hits.Load(), tt.wantHits)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(dest); err != nil || string(b) != string(payload) {
					t.Errorf("downloaded %q, %v", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one with %q", err, tt.wantErr)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), "*"))
			if len(left) != 0 {
				t.Errorf("failed download left %v", left)
			}
		})
	}
}
