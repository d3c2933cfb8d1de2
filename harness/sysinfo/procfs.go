package sysinfo

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuInfo reads the CPU model and the number of physical cores from the
// text of /proc/cpuinfo. physical is 0 when the file does not say (arm64
// kernels print no "physical id"/"core id").
func cpuInfo(text string) (model string, physical int) {
	cores := map[string]bool{}
	var physID, coreID string
	flush := func() {
		if coreID != "" {
			cores[physID+"/"+coreID] = true
		}
		physID, coreID = "", ""
	}
	var fallback string // arm64 and others: no "model name"
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			if model == "" {
				model = v
			}
		case "Hardware", "cpu model", "uarch", "Model":
			if fallback == "" {
				fallback = v
			}
		case "physical id":
			physID = v
		case "core id":
			coreID = v
		}
	}
	flush()
	if model == "" {
		model = fallback
	}
	return strings.Join(strings.Fields(model), " "), len(cores)
}

// simdFlags lists the vector and matrix instruction flags cpuFlags keeps,
// in the order it reports them: those that decide which kernels libtorch,
// oneDNN and OpenBLAS pick.
var simdFlags = []string{
	"sse4_2", "avx", "avx2", "fma", "f16c",
	"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
	"amx_tile", "amx_int8", "amx_bf16",
}

// cpuFlags reads the SIMD flags (simdFlags, in that order) the first
// "flags" line of the text of /proc/cpuinfo lists, separated by spaces;
// "" when there is no such line (arm64 kernels print "Features").
func cpuFlags(text string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		have := map[string]bool{}
		for _, f := range strings.Fields(v) {
			have[f] = true
		}
		var keep []string
		for _, f := range simdFlags {
			if have[f] {
				keep = append(keep, f)
			}
		}
		return strings.Join(keep, " ")
	}
	return ""
}

// memTotal reads MemTotal from the text of /proc/meminfo, in bytes.
func memTotal(text string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("MemTotal %q: %w", v, err)
		}
		if len(f) > 1 && f[1] != "kB" {
			return 0, fmt.Errorf("MemTotal %q: unknown unit", v)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no MemTotal line")
}

// osName reads PRETTY_NAME (or NAME and VERSION) from the text of
// /etc/os-release.
func osName(text string) string {
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		vals[k] = v
	}
	if v := vals["PRETTY_NAME"]; v != "" {
		return v
	}
	return strings.TrimSpace(vals["NAME"] + " " + vals["VERSION"])
}

// MemoryBytes is the machine's memory as /proc/meminfo says, or 0 where it
// cannot be read (not Linux).
func MemoryBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	n, err := memTotal(string(b))
	if err != nil {
		return 0
	}
	return n
}
