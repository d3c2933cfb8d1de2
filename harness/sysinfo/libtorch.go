package sysinfo

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// runFunc runs a command and returns its standard output. Tests replace
// it; Collect uses runCommand.
type runFunc func(ctx context.Context, name string, args ...string) ([]byte, error)

// libtorchVersion finds the version of the libtorch whose libtorch_cpu
// library is at path (as mapped by this process) and says where the
// version came from. In order:
//   - the Debian package owning the file (dpkg-query): Debian's headers
//     and file names say 1.13.0 for its 1.13.1 release, the package
//     version is the one users can look up;
//   - an official libtorch tree's build-version file ("2.1.0+cpu");
//   - a pip-installed torch's version.py;
//   - the tree's include/torch/version.h;
//   - the file name's version suffix (libtorch_cpu.so.1.13.0).
//
// It returns "" when none of these gives a version.
func libtorchVersion(ctx context.Context, path string, run runFunc) (version, source string) {
	if path == "" {
		return "", ""
	}
	if v, src := debianVersion(ctx, path, run); v != "" {
		return v, src
	}
	root := filepath.Dir(filepath.Dir(path)) // <root>/lib/libtorch_cpu.so
	if b, err := os.ReadFile(filepath.Join(root, "build-version")); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v, filepath.Join(root, "build-version")
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "version.py")); err == nil {
		if m := pyVersionRe.FindSubmatch(b); m != nil {
			return string(m[1]), filepath.Join(root, "version.py")
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "include", "torch", "version.h")); err == nil {
		if v := versionHeader(string(b)); v != "" {
			return v, filepath.Join(root, "include", "torch", "version.h")
		}
	}
	if m := sonameVersionRe.FindStringSubmatch(filepath.Base(path)); m != nil {
		return m[1], "file name " + filepath.Base(path)
	}
	return "", ""
}

var (
	pyVersionRe      = regexp.MustCompile(`(?m)^__version__\s*=\s*['"]([^'"]+)['"]`)
	sonameVersionRe  = regexp.MustCompile(`\.so\.(\d+(?:\.\d+)*)$`)
	versionHeaderRe  = regexp.MustCompile(`#define TORCH_VERSION_(MAJOR|MINOR|PATCH) (\d+)`)
	debianUpstreamRe = regexp.MustCompile(`^(?:\d+:)?(\d+(?:\.\d+)*)`)
)

// versionHeader reads the version from the text of torch/version.h.
func versionHeader(h string) string {
	parts := map[string]string{}
	for _, m := range versionHeaderRe.FindAllStringSubmatch(h, -1) {
		parts[m[1]] = m[2]
	}
	if parts["MAJOR"] == "" || parts["MINOR"] == "" || parts["PATCH"] == "" {
		return ""
	}
	return parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"]
}

// debianUpstream returns the upstream part of a Debian package version:
// "1.13.1+dfsg-4" -> "1.13.1", "1:2.1.0-1" -> "2.1.0".
func debianUpstream(v string) string {
	if m := debianUpstreamRe.FindStringSubmatch(strings.TrimSpace(v)); m != nil {
		return m[1]
	}
	return ""
}

// debianVersion asks dpkg which package owns path and that package's
// version. It returns "" when dpkg is missing or owns no such file.
func debianVersion(ctx context.Context, path string, run runFunc) (version, source string) {
	candidates := []string{path}
	// With merged /usr, /lib and /usr/lib are the same directory, but dpkg
	// knows each file under one of the two names only.
	if rest, ok := strings.CutPrefix(path, "/usr/lib/"); ok {
		candidates = append(candidates, "/lib/"+rest)
	} else if rest, ok := strings.CutPrefix(path, "/lib/"); ok {
		candidates = append(candidates, "/usr/lib/"+rest)
	}
	for _, p := range candidates {
		out, err := run(ctx, "dpkg-query", "-S", p)
		if err != nil {
			continue
		}
		pkg := dpkgOwner(string(out), p)
		if pkg == "" {
			continue
		}
		out, err = run(ctx, "dpkg-query", "-W", "-f=${Version}", pkg)
		if err != nil {
			continue
		}
		full := strings.TrimSpace(string(out))
		if v := debianUpstream(full); v != "" {
			return v, "Debian package " + strings.TrimSuffix(pkg, ":"+archOf(pkg)) + " " + full
		}
	}
	return "", ""
}

// dpkgOwner reads the package owning path from `dpkg-query -S path`
// output ("libtorch1.13:amd64: /usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0").
func dpkgOwner(out, path string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		pkgs, file, ok := strings.Cut(sc.Text(), ": ")
		if !ok || strings.TrimSpace(file) != path || strings.HasPrefix(pkgs, "diversion ") {
			continue
		}
		// Several packages may share a path: "a, b: /path".
		pkg, _, _ := strings.Cut(pkgs, ",")
		return strings.TrimSpace(pkg)
	}
	return ""
}

// archOf returns the architecture qualifier of "name:arch", or "".
func archOf(pkg string) string {
	if _, arch, ok := strings.Cut(pkg, ":"); ok {
		return arch
	}
	return ""
}
