// Command layoutgen writes the shared-memory layouts and protocol constants
// that the C extension and the Python package share with gomp's Go core, as
// a C header and a Python module, from the Go constants and struct layouts:
// a value is written only in Go. Run by go generate ./... (see gomp/doc.go);
// CI fails when the files it wrote are not the committed ones.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

// Where a constant goes.
type target int

const (
	toC target = 1 << iota
	toPython
	toBoth = toC | toPython
)

// A def is GOMP_<name> in C and <name> in Python.
type def struct {
	name  string
	value uint64
	to    target
}

type group struct {
	doc  string
	defs []def
}

var (
	lock   gomp.LockRecord
	sem    gomp.SemRecord
	holder gomp.Holder
	slot   gomp.SemHolder
)

var groups = []group{
	{"queue ring header (gomp/ring.go)", []def{
		{"RING_OFF_CAPACITY", gomp.RingOffCapacity, toC},
		{"RING_OFF_MAXSIZE", gomp.RingOffMaxsize, toC},
		{"RING_OFF_DATA", gomp.RingOffData, toC},
		{"RING_OFF_PLOCK", gomp.RingOffPLock, toC},
		{"RING_OFF_TAIL", gomp.RingOffTail, toC},
		{"RING_OFF_DATA_WAIT", gomp.RingOffDataWait, toC},
		{"RING_OFF_PUTS", gomp.RingOffPuts, toC},
		{"RING_OFF_CLOCK", gomp.RingOffCLock, toC},
		{"RING_OFF_HEAD", gomp.RingOffHead, toC},
		{"RING_OFF_SPACE_WAIT", gomp.RingOffSpaceWait, toC},
		{"RING_OFF_GETS", gomp.RingOffGets, toC},
		{"RING_OFF_TASKS", gomp.RingOffTasks, toC},
		{"RING_OFF_TASK_WAIT", gomp.RingOffTaskWait, toC},
		{"RING_OFF_WATCHES", gomp.RingOffWatches, toC},
		{"RING_OFF_WATCH_SEEN", gomp.RingOffWatchSeen, toC},
		{"RING_LOCK_WAITERS", gomp.RingLockWaiters, toC},
	}},
	{"queue ring frames (gomp/ring.go)", []def{
		{"RING_FRAME_HEADER", gomp.RingFrameHeader, toC},
		{"RING_FIRST", gomp.RingFirst, toC},
		{"RING_LAST", gomp.RingLast, toC},
		{"RING_WRAP", gomp.RingWrap, toC},
	}},
	{"queue messages (gomp/ring.go)", []def{
		{"MSG_PICKLE", gomp.MsgPickle, toBoth},
		{"MSG_RAW_BYTES", gomp.MsgRawBytes, toBoth},
		{"MSG_RAW_BYTEARRAY", gomp.MsgRawBytearray, toBoth},
		{"MSG_RAW_MEMORYVIEW", gomp.MsgRawMemoryview, toBoth},
		{"MSG_MARSHAL", gomp.MsgMarshal, toBoth},
		{"MSG_MAX_PARTS", gomp.MsgMaxParts, toBoth},
		{"MSG_RAW_MIN", gomp.MsgRawMin, toBoth},
	}},
	{"a lock word and its holder's record (gomp.Holder, gomp/liveness.go)", []def{
		{"HOLDER_OFF_PID", uint64(unsafe.Offsetof(holder.Pid)), toC},
		{"HOLDER_OFF_START", uint64(unsafe.Offsetof(holder.Start)), toC},
		{"HOLDER_SIZE", uint64(unsafe.Sizeof(holder)), toC},
	}},
	{"pipe ring control block and message header (gomp/pipe.go)", []def{
		{"PIPE_OFF_TAIL", gomp.PipeOffTail, toC},
		{"PIPE_OFF_READER_SLEEPING", gomp.PipeOffReaderSleeping, toC},
		{"PIPE_OFF_WANT_FD", gomp.PipeOffWantFD, toC},
		{"PIPE_OFF_SIGNALED", gomp.PipeOffSignaled, toC},
		{"PIPE_OFF_HEAD", gomp.PipeOffHead, toC},
		{"PIPE_OFF_WRITER_SLEEPING", gomp.PipeOffWriterSleeping, toC},
		{"PIPE_OFF_WRITER_LOCK", gomp.PipeOffWriterLock, toC},
		{"PIPE_OFF_LOCK_WAITERS", gomp.PipeOffLockWaiters, toC},
		{"PIPE_OFF_WRITER_TID", gomp.PipeOffWriterTid, toC},
		{"PIPE_OFF_WRITER_PID", gomp.PipeOffWriterPid, toC},
		{"PIPE_OFF_WRITER_START", gomp.PipeOffWriterStart, toC},
		{"PIPE_MSG_HEADER", gomp.PipeMsgHeader, toC},
		{"PIPE_FDS_SHIFT", gomp.PipeFDsShift, toC},
		{"PIPE_MSG_LEN_MASK", gomp.PipeMaxMsgLen, toC},
	}},
	{"lock records (gomp.LockRecord, gomp/sync.go); each starts with a Holder", []def{
		{"LOCK_OFF_THREAD", uint64(unsafe.Offsetof(lock.Thread)), toC},
		{"LOCK_OFF_COUNT", uint64(unsafe.Offsetof(lock.Count)), toC},
		{"LOCK_OFF_KIND", uint64(unsafe.Offsetof(lock.Kind)), toC},
		{"LOCK_OFF_WAITERS", uint64(unsafe.Offsetof(lock.Waiters)), toC},
		{"LOCK_OFF_REFS", uint64(unsafe.Offsetof(lock.Refs)), toC},
		{"LOCK_RECORD_SIZE", uint64(unsafe.Sizeof(lock)), toBoth},
	}},
	{"semaphore records (gomp.SemRecord, gomp/sync.go)", []def{
		{"SEM_OFF_COUNT", uint64(unsafe.Offsetof(sem.Count)), toC},
		{"SEM_OFF_WAITERS", uint64(unsafe.Offsetof(sem.Waiters)), toC},
		{"SEM_OFF_INITIAL", uint64(unsafe.Offsetof(sem.Initial)), toC},
		{"SEM_OFF_MAX", uint64(unsafe.Offsetof(sem.Max)), toC},
		{"SEM_OFF_KIND", uint64(unsafe.Offsetof(sem.Kind)), toC},
		{"SEM_OFF_REFS", uint64(unsafe.Offsetof(sem.Refs)), toC},
		{"SEM_OFF_HOLDERS", uint64(unsafe.Offsetof(sem.Holders)), toC},
		{"SEM_RECORD_SIZE", uint64(unsafe.Sizeof(sem)), toBoth},
		{"SEM_SLOTS", gomp.SemSlots, toC},
		{"SEM_SLOT_RECLAIMING", uint64(gomp.SemSlotReclaiming), toC},
		{"SEM_HOLDER_OFF_UNITS", uint64(unsafe.Offsetof(slot.Units)), toC},
		{"SEM_HOLDER_OFF_START", uint64(unsafe.Offsetof(slot.Start)), toC},
		{"SEM_HOLDER_SIZE", uint64(unsafe.Sizeof(slot)), toC},
	}},
	{"kinds of record (their Kind field, gomp/sync.go)", []def{
		{"RECORD_LOCK", gomp.RecordLock, toBoth},
		{"RECORD_RLOCK", gomp.RecordRLock, toBoth},
		{"RECORD_SEMAPHORE", gomp.RecordSemaphore, toBoth},
	}},
	{"every record's count of references (LockRecord.Refs, SemRecord.Refs)", []def{
		{"RECORD_OFF_REFS", uint64(unsafe.Offsetof(lock.Refs)), toPython},
	}},
}

const generated = "Code generated by go run ./internal/layoutgen (go generate ./...); DO NOT EDIT."

// literal writes v for C (which needs a suffix past int) or Python.
func literal(v uint64, c bool) string {
	switch {
	case v <= math.MaxInt32:
		return fmt.Sprint(v)
	case !c:
		return fmt.Sprintf("0x%x", v)
	case v <= math.MaxUint32:
		return fmt.Sprintf("0x%xu", v)
	default:
		return fmt.Sprintf("0x%xull", v)
	}
}

func renderC() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "/* %s\n * The layouts and constants C shares with the Go core. */\n", generated)
	b.WriteString("#ifndef GOMP_LAYOUT_H\n#define GOMP_LAYOUT_H\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "\n/* %s */\n", g.doc)
		for _, d := range g.defs {
			if d.to&toC != 0 {
				fmt.Fprintf(&b, "#define GOMP_%s %s\n", d.name, literal(d.value, true))
			}
		}
	}
	b.WriteString("\n#endif\n")
	return b.Bytes()
}

func renderPython() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\"\"\"The constants Python shares with the Go core and the C extension.\"\"\"\n", generated)
	var names []string
	for _, g := range groups {
		head := false
		for _, d := range g.defs {
			if d.to&toPython == 0 {
				continue
			}
			if !head {
				fmt.Fprintf(&b, "\n# %s\n", g.doc)
				head = true
			}
			fmt.Fprintf(&b, "%s = %s\n", d.name, literal(d.value, false))
			names = append(names, d.name)
		}
	}
	b.WriteString("\n__all__ = [\n")
	for _, n := range names {
		fmt.Fprintf(&b, "    %q,\n", n)
	}
	b.WriteString("]\n")
	return b.Bytes()
}

// write replaces path's content if it differs (leaving it untouched keeps
// the C extension from being rebuilt for nothing).
func write(path string, data []byte) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatal(err)
	}
}

func main() {
	header := flag.String("c", "", "the C header to write")
	module := flag.String("py", "", "the Python module to write")
	flag.Parse()
	if *header == "" || *module == "" || flag.NArg() != 0 {
		log.Fatal("usage: layoutgen -c HEADER -py MODULE")
	}
	// Python has one offset for the count of either kind of record
	if unsafe.Offsetof(lock.Refs) != unsafe.Offsetof(sem.Refs) {
		log.Fatal("LockRecord.Refs and SemRecord.Refs are at different offsets")
	}
	write(*header, renderC())
	write(*module, renderPython())
}
