package data

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Cache file layout, little endian:
//
//	"VBDCACHE"             8-byte magic
//	version                uint32 (cacheVersion)
//	header length          uint32
//	header                 JSON cacheHeader
//	pixels                 N*C*H*W bytes
//	labels                 N int32
//	checksum               uint32 CRC-32C of everything above
//
// Note: the whole file is read with one read and checked before use; a
// file that is short, long, or fails the checksum is rebuilt from the
// source. Pixels of a loaded set share the read buffer, so a cached load
// costs one allocation and one pass of the checksum.
const (
	cacheMagic   = "VBDCACHE"
	cacheVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCacheCorrupt marks a cache file that exists but cannot be used.
var errCacheCorrupt = errors.New("corrupt cache file")

// cacheHeader is the JSON header of a cache file.
type cacheHeader struct {
	Key     string    `json:"key"`
	Name    string    `json:"name"`
	Classes []string  `json:"classes"`
	N       int       `json:"n"`
	C       int       `json:"c"`
	H       int       `json:"h"`
	W       int       `json:"w"`
	Mean    []float32 `json:"mean"`
	Std     []float32 `json:"std"`
}

// readCache loads the set cached at file. It returns an error wrapping
// fs.ErrNotExist when there is no file and errCacheCorrupt when the file
// is unusable or holds another key.
func readCache(file, key string) (*Set, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const fixed = len(cacheMagic) + 4 + 4
	if st.Size() < int64(fixed+4) {
		return nil, fmt.Errorf("%w: %s: %d bytes", errCacheCorrupt, file, st.Size())
	}
	buf := make([]byte, st.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errCacheCorrupt, file, err)
	}
	body, sum := buf[:len(buf)-4], binary.LittleEndian.Uint32(buf[len(buf)-4:])
	if string(body[:len(cacheMagic)]) != cacheMagic {
		return nil, fmt.Errorf("%w: %s: bad magic", errCacheCorrupt, file)
	}
	if v := binary.LittleEndian.Uint32(body[8:]); v != cacheVersion {
		return nil, fmt.Errorf("%w: %s: version %d, want %d", errCacheCorrupt, file, v, cacheVersion)
	}
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: %s: checksum %08x, want %08x", errCacheCorrupt, file, got, sum)
	}
	hlen := int(binary.LittleEndian.Uint32(body[12:]))
	if hlen > len(body)-fixed {
		return nil, fmt.Errorf("%w: %s: header length %d", errCacheCorrupt, file, hlen)
	}
	var h cacheHeader
	if err := json.Unmarshal(body[fixed:fixed+hlen], &h); err != nil {
		return nil, fmt.Errorf("%w: %s: header: %v", errCacheCorrupt, file, err)
	}
	if h.Key != key {
		return nil, fmt.Errorf("%w: %s: holds key %q, want %q", errCacheCorrupt, file, h.Key, key)
	}
	npix := h.N * h.C * h.H * h.W
	off := fixed + hlen
	if h.N < 0 || npix < 0 || len(body)-off != npix+4*h.N {
		return nil, fmt.Errorf("%w: %s: %d data bytes for %d images of %dx%dx%d", errCacheCorrupt, file, len(body)-off, h.N, h.C, h.H, h.W)
	}
	s := &Set{
		Name: h.Name, Classes: h.Classes, N: h.N, C: h.C, H: h.H, W: h.W,
		Pixels: body[off : off+npix : off+npix],
		Labels: make([]int64, h.N),
		Mean:   h.Mean, Std: h.Std, Key: h.Key,
	}
	lab := body[off+npix:]
	for i := range s.Labels {
		s.Labels[i] = int64(int32(binary.LittleEndian.Uint32(lab[4*i:])))
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errCacheCorrupt, file, err)
	}
	return s, nil
}

// writeCache stores s at file under key, atomically: it writes a temporary
// file in the same directory, syncs it and renames it into place, so
// readers see the old file or the whole new one, and concurrent writers of
// the same key both succeed.
func writeCache(file, key string, s *Set) (err error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	hdr, err := json.Marshal(cacheHeader{
		Key: key, Name: s.Name, Classes: s.Classes, N: s.N, C: s.C, H: s.H, W: s.W, Mean: s.Mean, Std: s.Std,
	})
	if err != nil {
		return fmt.Errorf("write cache: header: %w", err)
	}
	head := make([]byte, 0, len(cacheMagic)+8+len(hdr))
	head = append(head, cacheMagic...)
	head = binary.LittleEndian.AppendUint32(head, cacheVersion)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(hdr)))
	head = append(head, hdr...)
	lab := make([]byte, 0, 4*len(s.Labels))
	for _, l := range s.Labels {
		lab = binary.LittleEndian.AppendUint32(lab, uint32(int32(l)))
	}
	var sum uint32
	for _, part := range [][]byte{head, s.Pixels, lab} {
		sum = crc32.Update(sum, castagnoli, part)
		if _, err := tmp.Write(part); err != nil {
			return fmt.Errorf("write cache %s: %w", tmp.Name(), err)
		}
	}
	if _, err := tmp.Write(binary.LittleEndian.AppendUint32(nil, sum)); err != nil {
		return fmt.Errorf("write cache %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write cache %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write cache %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write cache %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	return nil
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
