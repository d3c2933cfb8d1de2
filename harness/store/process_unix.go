//go:build unix

package store

import (
	"errors"
	"syscall"
)

// killAlive reports whether a process with this pid exists, by sending it
// the null signal. EPERM means it exists but belongs to someone else.
func killAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
