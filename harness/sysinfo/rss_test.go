package sysinfo

import (
	"os"
	"testing"
)

func TestVmHWM(t *testing.T) {
	for _, tt := range []struct {
		text string
		want int64
	}{
		{"Name:\tbench\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n", 20480 << 10},
		{"VmHWM:\t       0 kB\n", 0},
		{"Name:\tbench\nVmRSS:\t   10240 kB\n", 0}, // no VmHWM line
		{"VmHWM:\nVmHWM:\t 4 kB\n", 4 << 10},       // a line without a value is skipped
		{"", 0},
	} {
		if got := vmHWM(tt.text); got != tt.want {
			t.Errorf("vmHWM(%q) = %d, want %d", tt.text, got, tt.want)
		}
	}
}

// TestPeakRSS checks that the peak follows memory this process touches.
func TestPeakRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		if PeakRSS() != 0 {
			t.Errorf("PeakRSS = %d without /proc/self/status, want 0", PeakRSS())
		}
		t.Skip("no /proc/self/status")
	}
	ResetPeakRSS()
	before := PeakRSS()
	if before <= 0 {
		t.Fatalf("PeakRSS = %d, want > 0", before)
	}
	const n = 64 << 20
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	after := PeakRSS()
	if after < before+n/2 {
		t.Errorf("PeakRSS %d after touching %d bytes, want at least %d more than %d", after, n, n/2, before)
	}
}
