package main

import (
	"bytes"
	"os"
	"testing"
)

// The committed files are what the generator writes now (go generate ./...
// rewrites them).
func TestGeneratedFilesAreCurrent(t *testing.T) {
	for path, want := range map[string][]byte{
		"../../pybind/gomp/_gomp_layout.h": renderC(),
		"../../pybind/gomp/_layout.py":     renderPython(),
	} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./...", path)
		}
	}
}
