package terraform

import (
	"context"
	"errors"
	"fmt"
)

// Kind says what to do about a failed run.
type Kind string

const (
	// Retry: something transient failed (the database, a lock another
	// control plane holds, a network hiccup); the same run may succeed
	// when it is planned again.
	Retry Kind = "retry"
	// NeedsHuman: the configuration or the infrastructure is wrong (a bad
	// variable, a failed provisioner, no terraform binary); planning again
	// fails the same way until someone changes something.
	NeedsHuman Kind = "needs_human"
	// Cancelled: someone cancelled the run.
	Cancelled Kind = "cancelled"
)

// Error is a failed run step, saying what to do next.
type Error struct {
	Kind Kind
	// Step is the sub-step that failed: prepare, init, plan, show, apply.
	Step string
	// Hint says what to change or do, for a person reading the run.
	Hint string
	Err  error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Step, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// needsHuman wraps err from step as needing a person.
func needsHuman(step, hint string, err error) *Error {
	return &Error{Kind: NeedsHuman, Step: step, Hint: hint, Err: err}
}

// retry wraps err from step as transient.
func retry(step string, err error) *Error {
	return &Error{Kind: Retry, Step: step, Hint: "plan the fleet again", Err: err}
}

// classify turns what a step returned into an *Error: cancellation when
// ctx was cancelled, the error itself when it is already typed, else kind.
func classify(ctx context.Context, step string, kind Kind, hint string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if ctx.Err() != nil {
		return &Error{Kind: Cancelled, Step: step, Hint: "the run was cancelled; terraform was interrupted", Err: err}
	}
	return &Error{Kind: kind, Step: step, Hint: hint, Err: err}
}

// KindOf is the kind of err: its *Error's, or Retry for anything else.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Retry
}
