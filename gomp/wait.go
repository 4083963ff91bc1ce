package gomp

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// WaitReadable blocks until fd is readable (or hung up), or until timeout
// passes. A negative timeout waits forever. It reports whether fd became
// ready. EINTR restarts the wait with the time that is left, so a caller
// that wants to honour Ctrl-C asks for short slices and checks signals
// between them.
func WaitReadable(fd int, timeout time.Duration) (bool, error) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			// round up so that a 0.5 ms timeout does not become a busy poll
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n > 0 {
			if fds[0].Revents&unix.POLLNVAL != 0 {
				return false, unix.EBADF
			}
			return true, nil
		}
		if timeout >= 0 && !time.Now().Before(deadline) {
			return false, nil
		}
	}
}
