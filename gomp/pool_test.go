package gomp

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSupervisorReportsClosedPipe(t *testing.T) {
	s, err := NewSupervisor()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if err := s.Watch(p[0], 7); err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 4)
	if n, err := s.Wait(10*time.Millisecond, ids); err != nil || n != 0 {
		t.Fatalf("nothing ended yet: n=%d err=%v", n, err)
	}
	unix.Close(p[1])
	n, err := s.Wait(time.Second, ids)
	if err != nil || n != 1 || ids[0] != 7 {
		t.Fatalf("want id 7, got n=%d ids=%v err=%v", n, ids[:n], err)
	}
	// one-shot: not reported again
	if n, _ := s.Wait(10*time.Millisecond, ids); n != 0 {
		t.Fatalf("reported twice")
	}
	if err := s.Unwatch(p[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Unwatch(p[0]); err != nil {
		t.Fatalf("second unwatch: %v", err)
	}
}

func TestSupervisorReportsDeadChild(t *testing.T) {
	path, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	s, err := NewSupervisor()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	child, err := Spawn(&SpawnRequest{Path: path, Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(child.PidFD)
	if err := s.Watch(child.PidFD, 3); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := Signal(child.PidFD, int(unix.SIGKILL)); err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 1)
	n, err := s.Wait(5*time.Second, ids)
	if err != nil || n != 1 || ids[0] != 3 {
		t.Fatalf("want id 3, got n=%d err=%v", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("noticed after %v", d)
	}
	code, done, err := Reap(child.PidFD)
	if err != nil || !done || code != -int(unix.SIGKILL) {
		t.Fatalf("reap: code=%d done=%v err=%v", code, done, err)
	}
}
