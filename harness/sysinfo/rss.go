package sysinfo

import (
	"os"
	"strconv"
	"strings"
)

// ResetPeakRSS restarts the kernel's count of this process's peak resident
// set (VmHWM), so that work measured one piece at a time (an artifact
// built, an experiment evaluated) records its own peak. It is a no-op where
// /proc/self/clear_refs is missing (not Linux).
func ResetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// PeakRSS returns this process's peak resident set (VmHWM of
// /proc/self/status) since it started or since the last ResetPeakRSS, in
// bytes; 0 where /proc/self/status is missing.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return vmHWM(string(b))
}

// vmHWM reads the VmHWM line of the text of /proc/PID/status, in bytes;
// 0 when there is none.
func vmHWM(status string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
