//go:build linux

package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
)

// processStart returns the start time of process pid in clock ticks since
// boot, which tells a process from a later one that reuses its pid; 0 when
// unknown.
func processStart(pid int) uint64 {
	start, _, err := procStat(pid)
	if err != nil {
		return 0
	}
	return start
}

// processAlive reports whether process pid exists on this host and, when
// start is not 0, is the same process that started at start. Zombies count
// as dead.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, state, err := procStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return killAlive(pid) // /proc unreadable: existence is all we can tell
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return start == 0 || st == start
}

// procStat reads the state and start time of pid from /proc/PID/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	buf, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces or
	// parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(buf, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := bytes.Fields(buf[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, errors.New("malformed /proc stat")
	}
	return start, f[0][0], nil
}
