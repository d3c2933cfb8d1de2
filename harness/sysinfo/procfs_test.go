package sysinfo

import "testing"

// Two logical CPUs: one physical core with two hyper-threads.
const cpuinfoX86 = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
physical id	: 0
core id		: 0

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
physical id	: 0
core id		: 0
`

// Four logical CPUs on two sockets, two cores each.
const cpuinfoTwoSockets = `processor	: 0
model name	: AMD EPYC   7B13
physical id	: 0
core id		: 0

processor	: 1
model name	: AMD EPYC   7B13
physical id	: 0
core id		: 1

processor	: 2
model name	: AMD EPYC   7B13
physical id	: 1
core id		: 0

processor	: 3
model name	: AMD EPYC   7B13
physical id	: 1
core id		: 1
`

const cpuinfoARM = `processor	: 0
BogoMIPS	: 243.75
CPU implementer	: 0x41
CPU part	: 0xd0c

processor	: 1
BogoMIPS	: 243.75

Hardware	: Example SoC
`

func TestCPUInfo(t *testing.T) {
	tests := []struct {
		name, text string
		model      string
		physical   int
	}{
		{"x86 hyper-threads", cpuinfoX86, "Intel(R) Xeon(R) CPU @ 2.20GHz", 1},
		{"two sockets", cpuinfoTwoSockets, "AMD EPYC 7B13", 4},
		{"arm64", cpuinfoARM, "Example SoC", 0},
		{"empty", "", "", 0},
	}
	for _, tt := range tests {
		model, physical := cpuInfo(tt.text)
		if model != tt.model || physical != tt.physical {
			t.Errorf("%s: cpuInfo = %q, %d; want %q, %d", tt.name, model, physical, tt.model, tt.physical)
		}
	}
}

// An Intel server with AVX-512, VNNI and AMX; the second processor's
// flags differ so that a test can tell which line was read.
const cpuinfoAMX = `processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni avx_vnni avx512_fp16 amx_bf16 amx_tile amx_int8

processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse sse2
`

// An AMD desktop: AVX2 but none of the AVX-512 family.
const cpuinfoAVX2 = `processor	: 0
model name	: AMD EPYC 7B13
flags		: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 popcnt aes avx f16c avx2 bmi2 sha_ni
`

func TestCPUFlags(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"amx", cpuinfoAMX, "sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8 amx_bf16"},
		{"avx2", cpuinfoAVX2, "sse4_2 avx avx2 fma f16c"},
		{"no vector flags", "flags\t\t: fpu vme de pse\n", ""},
		{"no flags line", cpuinfoX86, ""},
		{"arm64", cpuinfoARM, ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		if got := cpuFlags(tt.text); got != tt.want {
			t.Errorf("%s: cpuFlags = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestMemTotal(t *testing.T) {
	tests := []struct {
		text    string
		want    int64
		wantErr bool
	}{
		{"MemTotal:       24683620 kB\nMemFree:        1000 kB\n", 24683620 * 1024, false},
		{"MemFree:        1000 kB\nMemTotal:  2 kB\n", 2048, false},
		{"MemFree:        1000 kB\n", 0, true},
		{"MemTotal:       lots kB\n", 0, true},
		{"MemTotal:       5 MB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := memTotal(tt.text)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("memTotal(%q) = %d, %v; want %d, error %v", tt.text, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOSName(t *testing.T) {
	tests := []struct{ text, want string }{
		{"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n", "Debian GNU/Linux 12 (bookworm)"},
		{"# comment\nNAME='Alpine Linux'\nVERSION=3.19\n", "Alpine Linux 3.19"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := osName(tt.text); got != tt.want {
			t.Errorf("osName(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
