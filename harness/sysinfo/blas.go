package sysinfo

import (
	"bufio"
	"path/filepath"
	"strings"
)

// ReferenceBLAS is Info.BLAS when libtorch loaded the reference (netlib)
// BLAS: correct, but so much slower than an optimized one (compare `bench
// env`'s sgemm_gflops) that every latency measured on top of it is
// meaningless.
const ReferenceBLAS = "reference BLAS (slow!)"

// unknownBLAS is Info.BLAS when no BLAS library could be identified.
const unknownBLAS = "unknown"

// classifyBLAS names the BLAS implementation a library file belongs to.
// path should have its symbolic links resolved: Debian's alternatives
// system puts every implementation behind the same libblas.so.3 name and
// only the real file's directory tells them apart. ok is false when path
// is not a BLAS library (LAPACK, OpenMP runtimes, libtorch itself).
func classifyBLAS(path string) (name string, ok bool) {
	base := strings.ToLower(filepath.Base(path))
	dir := strings.ToLower(filepath.Base(filepath.Dir(path)))
	if strings.HasPrefix(base, "liblapack") || strings.HasPrefix(base, "libcblas") {
		return "", false // LAPACK and C wrappers call a BLAS, they are none
	}
	variant := func(prefix string) string {
		switch {
		// Debian: .../openblas-pthread/, .../blis-openmp/; Fedora and
		// upstream: libopenblasp-r0.3.21.so, libopenblaso.so.0.
		case strings.HasSuffix(dir, "-pthread") || strings.HasPrefix(base, prefix+"p-") || strings.HasPrefix(base, prefix+"p."):
			return " (pthread)"
		case strings.HasSuffix(dir, "-openmp") || strings.HasPrefix(base, prefix+"o-") || strings.HasPrefix(base, prefix+"o."):
			return " (OpenMP)"
		case strings.HasSuffix(dir, "-serial"):
			return " (serial)"
		}
		return ""
	}
	switch {
	case strings.HasPrefix(base, "libmkl"):
		return "Intel MKL", true
	case strings.HasPrefix(base, "libopenblas") || strings.HasPrefix(dir, "openblas") && strings.HasPrefix(base, "libblas"):
		return "OpenBLAS" + variant("libopenblas"), true
	case strings.HasPrefix(base, "libblis") || strings.HasPrefix(dir, "blis") && strings.HasPrefix(base, "libblas"):
		return "BLIS" + variant("libblis"), true
	case strings.HasPrefix(base, "libflexiblas"):
		return "FlexiBLAS", true
	case strings.HasPrefix(base, "libarmpl"):
		return "Arm Performance Libraries", true
	case strings.HasPrefix(base, "libsatlas") || strings.HasPrefix(base, "libtatlas") || dir == "atlas" && strings.HasPrefix(base, "libblas"):
		return "ATLAS", true
	case strings.HasPrefix(base, "librefblas") || dir == "blas" && strings.HasPrefix(base, "libblas"):
		// Debian's libblas3 installs the reference BLAS in .../blas/.
		return ReferenceBLAS, true
	case strings.HasPrefix(base, "libblas.so") || strings.HasPrefix(base, "libblas64.so"):
		return "libblas (unidentified implementation)", true
	}
	return "", false
}

// mappedFiles returns the distinct file paths of a /proc/PID/maps listing,
// in order of first appearance.
func mappedFiles(maps string) []string {
	var paths []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(maps))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode pathname; the path may hold spaces.
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[5], "/") {
			continue
		}
		p := strings.TrimSuffix(strings.Join(f[5:], " "), " (deleted)")
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	return paths
}

// blasFromMaps picks the BLAS libtorch calls from a /proc/PID/maps
// listing; resolve follows symbolic links (the kernel already lists real
// paths, but a caller may pass loader names). It returns "" when no BLAS
// library is mapped: official libtorch builds link MKL statically.
//
// Several BLAS libraries can be mapped at once (Debian's libtorch needs
// libblas.so.3 and, through other dependencies, libopenblas.so.0). The
// dynamic linker binds libtorch's sgemm_ to the first in load order, and
// libtorch names the generic libblas.so.3 among its own dependencies, so a
// library behind that generic name wins over the others.
func blasFromMaps(maps string, resolve func(string) string) (name, path string) {
	best := -1
	for _, p := range mappedFiles(maps) {
		real := resolve(p)
		n, ok := classifyBLAS(real)
		if !ok {
			continue
		}
		rank := 1
		if b := filepath.Base(p); strings.HasPrefix(b, "libblas.so") || strings.HasPrefix(filepath.Base(real), "libblas.so") {
			rank = 2
		}
		if rank > best {
			best, name, path = rank, n, real
		}
	}
	return name, path
}

// libraryFromMaps returns the first mapped file whose base name starts
// with prefix, or "".
func libraryFromMaps(maps, prefix string) string {
	for _, p := range mappedFiles(maps) {
		if strings.HasPrefix(filepath.Base(p), prefix) {
			return p
		}
	}
	return ""
}

// blasFromConfig reads the BLAS libtorch was built against from the text
// of at::show_config ("BLAS_INFO=mkl"), for builds that link it
// statically so that no BLAS library shows up among the mapped files.
func blasFromConfig(config string) string {
	switch v := configValue(config, "BLAS_INFO"); v {
	case "mkl":
		return "Intel MKL (linked into libtorch)"
	case "open":
		return "OpenBLAS (linked into libtorch)"
	case "":
		return ""
	default:
		return v + " (per libtorch's build configuration)"
	}
}

// configValue returns the value of a "KEY=value" build setting in the
// text of at::show_config, or "".
func configValue(config, key string) string {
	for _, f := range strings.FieldsFunc(config, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' }) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
