package data

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// Download fetches url into the file dest, checking the MD5 sum of what
// arrives against md5Hex before the file appears under its name (it is
// written to a temporary file and renamed). An existing dest with the right
// sum is kept without a download. client nil means http.DefaultClient.
//
// Nothing in this package downloads implicitly; callers ask for it.
func Download(ctx context.Context, client *http.Client, url, md5Hex, dest string) (err error) {
	if client == nil {
		client = http.DefaultClient
	}
	if sum, err := fileMD5(dest); err == nil && sum == md5Hex {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), filepath.Base(dest)+".part-*")
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := md5.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != md5Hex {
		return fmt.Errorf("download %s: md5 %s, want %s (the file is corrupt or not the published one)", url, got, md5Hex)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	return nil
}

// DownloadCIFAR10 fetches the canonical cifar-10-binary.tar.gz (about 162
// MB) into dir/cifar10/, where Open finds it when dir is on the search
// path, and returns its path.
func DownloadCIFAR10(ctx context.Context, dir string) (string, error) {
	dest := filepath.Join(dir, "cifar10", "cifar-10-binary.tar.gz")
	if err := Download(ctx, nil, cifar10URL, cifar10MD5, dest); err != nil {
		return "", err
	}
	return dest, nil
}

// fileMD5 returns the hex MD5 of a file.
func fileMD5(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
