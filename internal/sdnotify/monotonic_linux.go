package sdnotify

import (
	"syscall"
	"unsafe"
)

// monotonicUsec reads CLOCK_MONOTONIC, which RELOADING=1 must carry.
func monotonicUsec() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}
