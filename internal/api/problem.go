package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sluicehq/sluice/internal/identity"
)

// Problem is an RFC 9457 problem detail, the body of every error response
// (Content-Type application/problem+json).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors name the offending fields of the request, when there are any.
	Errors    []FieldError `json:"errors,omitempty"`
	RequestID string       `json:"request_id,omitempty"`

	retryAfter int // seconds, for 429, 503 and a 409 that will pass
}

// FieldError names one offending field: a JSON body field ("name",
// "settings.region"), a query parameter or a path parameter, or a header.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
	// Line and Column locate an error inside a field's text (a pipeline
	// source), 1-based.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

func problem(status int, slug, detail string, fields ...FieldError) *Problem {
	return &Problem{
		Type:   "urn:sluice:problem:" + slug,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: fields,
	}
}

func badRequest(detail string, fields ...FieldError) *Problem {
	return problem(http.StatusBadRequest, "bad-request", detail, fields...)
}

func invalid(fields ...FieldError) *Problem {
	detail := "the request has invalid fields"
	if len(fields) == 1 {
		detail = fields[0].Field + ": " + fields[0].Detail
	}
	return problem(http.StatusUnprocessableEntity, "invalid", detail, fields...)
}

func invalidField(field, format string, args ...any) *Problem {
	return invalid(FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

func notFound(what string) *Problem {
	return problem(http.StatusNotFound, "not-found", what+" not found")
}

func forbidden(detail string) *Problem {
	return problem(http.StatusForbidden, "forbidden", detail)
}

func unauthorized(detail string) *Problem {
	return problem(http.StatusUnauthorized, "unauthenticated", detail)
}

func conflict(detail string, fields ...FieldError) *Problem {
	return problem(http.StatusConflict, "conflict", detail, fields...)
}

func preconditionFailed(detail string) *Problem {
	return problem(http.StatusPreconditionFailed, "precondition-failed", detail,
		FieldError{Field: "If-Match", Detail: detail})
}

func tooManyRequests(detail string, retryAfter int) *Problem {
	p := problem(http.StatusTooManyRequests, "rate-limited", detail)
	p.retryAfter = retryAfter
	return p
}

// writeProblem writes err as problem+json. Errors that are not a *Problem
// are internal: the client gets a 500 with the request id, the log gets
// the error.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.Is(err, identity.ErrBusy) {
		// Shedding load, not failing: the client should come back soon.
		p = problem(http.StatusServiceUnavailable, "busy", "too many password checks are in progress; retry shortly")
		p.retryAfter = 1
	}
	if p == nil && !errors.As(err, &p) {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "method", r.Method, "route", routePattern(r), "request_id", requestID(r.Context()))
		p = problem(http.StatusInternalServerError, "internal", "an internal error occurred; quote the request id when reporting it")
	}
	cp := *p
	cp.RequestID = requestID(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	if cp.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(cp.retryAfter))
	}
	if cp.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	w.WriteHeader(cp.Status)
	_ = json.NewEncoder(w).Encode(&cp)
}
