package state

import "fmt"

// OptionError is returned by a constructor for an invalid option: which
// option and why.
type OptionError struct {
	Option string // the option's function name, e.g. "MemTableSize"
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("state: invalid option %s: %s", e.Option, e.Reason)
}
