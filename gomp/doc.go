// Package gomp is the Go core of gomp, a drop-in replacement for Python's
// multiprocessing. It holds what does not need the Python interpreter:
// starting and supervising child processes, shared memory segments, futex
// waits, the queues' rings, the pipes behind connections, and the recovery
// of what dead processes held. It is pure Go; pybind/capi exports it to C.
//
// The layouts of shared memory and the protocol constants that the C
// extension and the Python package use are this package's constants:
// go generate writes them into pybind/gomp/_gomp_layout.h and _layout.py.
package gomp

//go:generate go run ../internal/layoutgen -c ../pybind/gomp/_gomp_layout.h -py ../pybind/gomp/_layout.py
