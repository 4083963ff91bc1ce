// Package gomp is the Go core of gomp, a drop-in replacement for Python's
// multiprocessing. It holds everything that does not need the Python
// interpreter: starting and supervising child processes, talking to the
// zygote that forks them, and (later) shared memory, futex waits, rings and
// connections. It is pure Go; pybind/capi exports it to C.
package gomp
