package script_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operators/script"
)

func TestMain(m *testing.M) {
	// The isolated tests start this binary as their script hosts.
	script.ServeHostIfChild()
	code := m.Run()
	// Every host exits when its operator is gone or it has idled: none may
	// outlive the tests.
	if left := waitChildren(15 * time.Second); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "script hosts left after the tests: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// children lists the processes whose parent is this one.
func children() []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after
		// its closing parenthesis.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(self) {
			out = append(out, pid)
		}
	}
	return out
}

// waitChildren waits up to d for this process's children to exit and
// returns those still there.
func waitChildren(d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		left := children()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}
