package sysinfo

import ("testing"; "runtime/debug")

func TestZZTmp(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	t.Log(ok, bi)
}
