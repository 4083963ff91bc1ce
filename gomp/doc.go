// Package gomp is the Go core of gomp, a drop-in replacement for Python's
// multiprocessing. It holds what does not need the Python interpreter:
// starting and supervising child processes, shared memory segments, futex
// waits, the queues' rings, the pipes behind connections, and the recovery
// of what dead processes held. It is pure Go; pybind/capi exports it to C.
package gomp
