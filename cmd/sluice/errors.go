package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/internal/apiclient"
)

// explain turns an error into what a person should read: the problem's
// detail and field errors rather than a status line, and what to do next
// when that is clear.
func explain(err error) string {
	var unreachable *apiclient.UnreachableError
	if errors.As(err, &unreachable) {
		return fmt.Sprintf("cannot reach the control plane at %s: is `make dev` running?\n  (%v)", unreachable.URL, unreachable.Err)
	}
	var ae *apiclient.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	var b strings.Builder
	msg := ae.Detail
	if msg == "" {
		msg = ae.Title
	}
	if msg == "" {
		msg = http.StatusText(ae.Status)
	}
	fmt.Fprintf(&b, "%s (%d)", msg, ae.Status)
	for _, f := range ae.Errors {
		if len(ae.Errors) == 1 && msg == f.Field+": "+f.Detail && f.Line == 0 {
			break // the detail says it already
		}
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Detail)
		if f.Line > 0 {
			fmt.Fprintf(&b, " (line %d, column %d)", f.Line, f.Column)
		}
	}
	switch {
	case ae.Status == http.StatusUnauthorized:
		b.WriteString("\n  run `sluice login` to log in again (or set SLUICE_TOKEN)")
	case ae.Status == http.StatusForbidden:
		b.WriteString("\n  the API token's role does not allow this; ask a project owner for a token with a stronger role")
	case ae.Status >= 500 && ae.RequestID != "":
		fmt.Fprintf(&b, "\n  request id %s (quote it when reporting the problem)", ae.RequestID)
	}
	return b.String()
}
