package gomp

import (
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SpawnRequest describes a child started by fork+exec.
type SpawnRequest struct {
	Path  string   // executable
	Argv  []string // argv, argv[0] included
	Env   []string // the whole environment; Go's own snapshot is stale
	Dir   string   // working directory, "" for the current one
	Files []int    // descriptors that become the child's 0, 1, 2, 3, ...; -1 closes that slot
}

// Child is a process started by Spawn: a direct child of this process.
type Child struct {
	Pid   int
	PidFD int // readable once the child has exited; the sentinel
}

// The kernel sends PR_SET_PDEATHSIG when the *thread* that forked the child
// exits, not the process. Go may retire idle threads, so every fork happens
// on one goroutine locked to one thread for the life of the process.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnCall
)

type spawnCall struct {
	req   *SpawnRequest
	reply chan spawnResult
}

type spawnResult struct {
	child Child
	err   error
}

func spawner() {
	runtime.LockOSThread() // never unlocked: this thread lives as long as the process
	for call := range spawnReqs {
		call.reply <- spawnNow(call.req)
	}
}

func spawnNow(r *SpawnRequest) spawnResult {
	files := make([]uintptr, len(r.Files))
	for i, fd := range r.Files {
		files[i] = uintptr(fd)
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		Dir:   r.Dir,
		Env:   r.Env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Pdeathsig: syscall.SIGKILL,
			PidFD:     &pidfd,
		},
	}
	pid, err := syscall.ForkExec(r.Path, r.Argv, attr)
	if err != nil {
		return spawnResult{err: err}
	}
	unix.CloseOnExec(pidfd)
	return spawnResult{child: Child{Pid: pid, PidFD: pidfd}}
}

// Spawn starts a child process. The child is killed if this process dies,
// however it dies, so a parent killed with SIGKILL leaves no orphan.
func Spawn(r *SpawnRequest) (Child, error) {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnCall)
		go spawner()
	})
	reply := make(chan spawnResult, 1)
	spawnReqs <- spawnCall{req: r, reply: reply}
	res := <-reply
	return res.child, res.err
}

// Reap collects the exit status of a child started by Spawn without
// blocking. It returns done=false while the child runs. The exit code
// follows Python's convention: the status passed to exit, or -signum.
func Reap(pidfd int) (code int, done bool, err error) {
	var info unix.Siginfo
	const pPidFD = 3 // P_PIDFD
	for {
		err = unix.Waitid(pPidFD, pidfd, &info, unix.WEXITED|unix.WNOHANG, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, false, err
	}
	pid, status, sigcode := siginfoChild(&info)
	if pid == 0 {
		return 0, false, nil
	}
	return exitCode(status, sigcode), true, nil
}

// Signal sends sig to the process behind pidfd; the pidfd makes this
// immune to pid reuse.
func Signal(pidfd int, sig int) error {
	return unix.PidfdSendSignal(pidfd, unix.Signal(sig), nil, 0)
}
