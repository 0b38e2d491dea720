// Package localtest helps tests of fleets of the local module, whose
// runners are processes on this host: it finds them by the pid files the
// module writes and tells whether they still run.
package localtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Pids reads the local module's pid files (runner.pid) under dir.
func Pids(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "runner.pid" {
			b, _ := os.ReadFile(p)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// Alive is whether pid runs; a zombie, dead but not reaped by an init that
// does not reap, is not.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}
