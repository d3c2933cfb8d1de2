//go:build unix && !linux

package store

// processStart returns 0: the start time of a process is not read on this
// system, so a reused pid looks alive.
func processStart(pid int) uint64 { return 0 }

// processAlive reports whether a process with this pid exists.
func processAlive(pid int, start uint64) bool {
	return pid > 0 && killAlive(pid)
}
