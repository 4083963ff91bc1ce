package gomp

import (
	"os"
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
