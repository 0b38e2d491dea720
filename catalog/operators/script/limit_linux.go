package script

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// hardLimit sets RLIMIT_DATA to what the process's data mappings hold now
// plus extra, scaled by the race detector's shadow memory when it is on.
// Linux counts private writable mappings, which is where Go's heap,
// stacks and runtime structures live: an allocation past the limit fails,
// and Go dies with "fatal error: runtime: out of memory".
func hardLimit(extra int64) error {
	base, err := vmData()
	if err != nil {
		return err
	}
	limit := uint64(base + extra*raceShadow)
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: limit, Max: limit})
}

// vmData reads the process's data size (VmData) from /proc.
func vmData() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := bytes.CutPrefix(s.Bytes(), []byte("VmData:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmData: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmData in /proc/self/status")
}
