package gomp

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func spawnShell(t *testing.T, script string) Child {
	t.Helper()
	child, err := Spawn(&SpawnRequest{
		Path:  "/bin/sh",
		Argv:  []string{"sh", "-c", script},
		Env:   os.Environ(),
		Files: []int{0, 1, 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		Signal(child.PidFD, int(unix.SIGKILL))
		WaitReadable(child.PidFD, 5*time.Second)
		Reap(child.PidFD)
		unix.Close(child.PidFD)
	})
	return child
}

func waitExit(t *testing.T, c Child) int {
	t.Helper()
	ok, err := WaitReadable(c.PidFD, 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("child did not exit: ok=%v err=%v", ok, err)
	}
	code, done, err := Reap(c.PidFD)
	if err != nil || !done {
		t.Fatalf("reap: done=%v err=%v", done, err)
	}
	return code
}

func TestSpawnExitCode(t *testing.T) {
	c := spawnShell(t, "exit 7")
	if code := waitExit(t, c); code != 7 {
		t.Fatalf("exit code %d, want 7", code)
	}
}

func TestSignalGivesNegativeCode(t *testing.T) {
	c := spawnShell(t, "exec sleep 30")
	if _, done, _ := Reap(c.PidFD); done {
		t.Fatal("reaped a running child")
	}
	if err := Signal(c.PidFD, int(unix.SIGTERM)); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, c); code != -int(unix.SIGTERM) {
		t.Fatalf("exit code %d, want %d", code, -int(unix.SIGTERM))
	}
}

func TestSpawnPassesEnvironmentAndDirectory(t *testing.T) {
	dir := t.TempDir()
	out := dir + "/out"
	child, err := Spawn(&SpawnRequest{
		Path:  "/bin/sh",
		Argv:  []string{"sh", "-c", `printf '%s %s' "$GOMP_X" "$(pwd)" > out`},
		Env:   []string{"GOMP_X=hello", "PATH=/usr/bin:/bin"},
		Dir:   dir,
		Files: []int{0, 1, 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(child.PidFD)
	if code := waitExit(t, child); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	got, _ := os.ReadFile(out)
	if string(got) != "hello "+dir {
		t.Fatalf("child saw %q", got)
	}
}

func TestSpawnMissingExecutable(t *testing.T) {
	_, err := Spawn(&SpawnRequest{Path: "/nonexistent/x", Argv: []string{"x"}})
	if err == nil {
		t.Fatal("spawned a missing executable")
	}
}

func TestWaitReadableTimesOut(t *testing.T) {
	c := spawnShell(t, "exec sleep 30")
	start := time.Now()
	ok, err := WaitReadable(c.PidFD, 50*time.Millisecond)
	if err != nil || ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("waited %v for 50ms", d)
	}
}

func TestWaitReadableBadFD(t *testing.T) {
	if _, err := WaitReadable(987654, 0); err == nil {
		t.Fatal("no error for a closed descriptor")
	}
}

// fakeZygote answers one request on sock the way gomp's zygote does.
func fakeZygote(t *testing.T, sock int, reply func(payload []byte, fds []int) (pid int32, flags uint32, msg string, send []int)) {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, 0)
	if err != nil {
		t.Error(err)
		return
	}
	fds, _ := parseRights(oob[:oobn])
	size := int(binary.LittleEndian.Uint32(buf))
	payload := append([]byte(nil), buf[4:n]...)
	for len(payload) < size {
		m, err := unix.Read(sock, buf)
		if err != nil || m == 0 {
			t.Error("short request")
			return
		}
		payload = append(payload, buf[:m]...)
	}
	pid, flags, msg, send := reply(payload, fds)
	head := make([]byte, 12+len(msg))
	binary.LittleEndian.PutUint32(head, uint32(pid))
	binary.LittleEndian.PutUint32(head[4:], flags)
	binary.LittleEndian.PutUint32(head[8:], uint32(len(msg)))
	copy(head[12:], msg)
	var rights []byte
	if len(send) > 0 {
		rights = unix.UnixRights(send...)
	}
	if err := unix.Sendmsg(sock, head, rights, nil, 0); err != nil {
		t.Error(err)
	}
	closeAll(fds)
}

func socketPair(t *testing.T) (int, int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestZygoteStartSiblingAndStatusPipe(t *testing.T) {
	parent, zyg := socketPair(t)
	big := []byte(strings.Repeat("x", 300000)) // bigger than one socket write
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fakeZygote(t, zyg, func(payload []byte, fds []int) (int32, uint32, string, []int) {
			if len(payload) != len(big) || len(fds) != 2 {
				t.Errorf("zygote got %d bytes and %d fds", len(payload), len(fds))
			}
			// a pipe stands in for both: its read end as the pidfd, its
			// write end as the status pipe, so the test can write a status
			// and read it back
			return 4242, replyStatusPipe, "", []int{int(r.Fd()), int(w.Fd())}
		})
	}()
	child, err := ZygoteStart(parent, big, []int{1, 2})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if child.Pid != 4242 || child.PidFD < 0 || child.StatusFD < 0 {
		t.Fatalf("got %+v", child)
	}
	// the status pipe carries an i32 exit code
	status := make([]byte, 4)
	binary.LittleEndian.PutUint32(status, uint32(0xFFFFFFF7)) // -9
	if _, err := unix.Write(child.StatusFD, status); err != nil {
		t.Fatal(err)
	}
	code, ok, err := ReadStatus(child.PidFD)
	if err != nil || !ok || code != -9 {
		t.Fatalf("code=%d ok=%v err=%v", code, ok, err)
	}
	unix.Close(child.StatusFD)
	unix.Close(child.PidFD)
}

func TestZygoteStartReportsFailure(t *testing.T) {
	parent, zyg := socketPair(t)
	go fakeZygote(t, zyg, func([]byte, []int) (int32, uint32, string, []int) {
		return -1, 0, "cannot fork: out of memory", nil
	})
	_, err := ZygoteStart(parent, []byte("payload"), nil)
	if err == nil || !strings.Contains(err.Error(), "cannot fork") {
		t.Fatalf("err=%v", err)
	}
}

func TestZygoteStartNoticesADeadZygote(t *testing.T) {
	parent, zyg := socketPair(t)
	unix.Close(zyg)
	if _, err := ZygoteStart(parent, []byte("payload"), nil); err == nil {
		t.Fatal("no error from a closed zygote socket")
	}
}

func TestReadStatusAfterZygoteDied(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer r.Close()
	_, ok, err := ReadStatus(int(r.Fd()))
	if err != nil || ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
}
