package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// ProcSample is one reading of a process's /proc files.
type ProcSample struct {
	At time.Time
	// CPU is the user and system time the process has used so far.
	CPU time.Duration
	// RSS is its resident set size (VmRSS) and HWM the peak of it since
	// it started (VmHWM), in bytes. RSS is Anon (the heap, stacks and
	// other private memory: RssAnon) plus File (pages of the binary and
	// other mapped files: RssFile) plus shared memory.
	RSS, HWM, Anon, File int64
}

// ReadProc reads pid's CPU time and resident memory.
func ReadProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	f, err := procStat(strconv.Itoa(pid))
	if err != nil {
		return s, err
	}
	s.CPU = cpuOf(f, false)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSS, err = kib(v)
		case "VmHWM":
			s.HWM, err = kib(v)
		case "RssAnon":
			s.Anon, err = kib(v)
		case "RssFile":
			s.File, err = kib(v)
		}
		if err != nil {
			return s, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
	}
	if s.RSS == 0 {
		return s, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return s, nil
}

// kib parses a /proc/<pid>/status size such as "  23456 kB" into bytes.
func kib(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	return n << 10, err
}

// TreeCPU is the CPU time of process pid and of its children, running or
// exited (PostgreSQL's postmaster and its backends).
func TreeCPU(pid int) time.Duration {
	f, err := procStat(strconv.Itoa(pid))
	if err != nil {
		return 0
	}
	total := cpuOf(f, true)
	ents, _ := os.ReadDir("/proc")
	parent := strconv.Itoa(pid)
	for _, e := range ents {
		if c := e.Name()[0]; c < '0' || c > '9' {
			continue
		}
		if f, err := procStat(e.Name()); err == nil && f[1] == parent {
			total += cpuOf(f, false)
		}
	}
	return total
}

// procStat returns the fields of /proc/<pid>/stat after the command name
// (f[0] is the state, field 3 of proc(5); f[1] the parent's pid).
func procStat(pid string) ([]string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("/proc/" + pid + "/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, errors.New("/proc/" + pid + "/stat: too few fields")
	}
	return f, nil
}

// cpuOf is utime + stime (and cutime + cstime with children) of f.
func cpuOf(f []string, children bool) time.Duration {
	last := 12 // stime, field 15
	if children {
		last = 14 // cstime, field 17
	}
	var ticks int64
	for _, x := range f[11 : last+1] {
		n, _ := strconv.ParseInt(x, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}
