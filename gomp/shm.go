package gomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Segment is shared memory owned by gomp: an anonymous memfd mapped
// MAP_SHARED. It has no name in /dev/shm, so nothing leaks when processes
// die: the kernel frees it when the last descriptor and mapping go away.
// Other processes get it by inheriting or receiving the descriptor
// (SCM_RIGHTS) and calling MapSegment.
type Segment struct {
	FD  int
	Mem []byte
}

// NewSegment creates a zero-filled segment of size bytes. name only labels
// it in /proc/<pid>/fd and /proc/<pid>/maps.
func NewSegment(name string, size int) (*Segment, error) {
	if size <= 0 {
		return nil, fmt.Errorf("segment size must be positive, got %d", size)
	}
	fd, err := unix.MemfdCreate("gomp:"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// owner only (memfds start at 0777): a second layer behind /proc/<pid>/fd,
	// which another user cannot open anyway
	if err := unix.Fchmod(fd, 0o600); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	seg, err := mapFD(fd, size)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return seg, nil
}

// MapSegment maps a segment from a descriptor received from another
// process. The segment takes ownership of fd.
func MapSegment(fd int) (*Segment, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size <= 0 {
		return nil, fmt.Errorf("descriptor %d is not a shared memory segment", fd)
	}
	return mapFD(fd, int(st.Size))
}

func mapFD(fd, size int) (*Segment, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &Segment{FD: fd, Mem: mem}, nil
}

// Word returns the 32-bit word at byte offset off, for atomics and futexes.
// off must be a multiple of 4.
func (s *Segment) Word(off int) *uint32 {
	if off%4 != 0 || off+4 > len(s.Mem) {
		panic(fmt.Sprintf("gomp: bad word offset %d in a segment of %d bytes", off, len(s.Mem)))
	}
	return (*uint32)(unsafe.Pointer(&s.Mem[off]))
}

// Close unmaps the segment and closes its descriptor.
func (s *Segment) Close() error {
	var err error
	if s.Mem != nil {
		err = unix.Munmap(s.Mem)
		s.Mem = nil
	}
	if s.FD >= 0 {
		if cerr := unix.Close(s.FD); err == nil {
			err = cerr
		}
		s.FD = -1
	}
	return err
}
