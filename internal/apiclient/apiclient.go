// Package apiclient is a small client for the control plane's REST API
// (/api/v1) with an API token: the calls the `sluice` CLI makes, typed,
// with errors that say what went wrong (a problem+json response, or a
// control plane that cannot be reached).
//
// It decodes only the fields it uses and ignores the rest, so the server
// may add fields without breaking it.
package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// Client calls the API of one control plane with one API token. Create it
// with New; it is safe for concurrent use.
type Client struct {
	base  string // without a trailing slash, e.g. http://127.0.0.1:8080
	token string
	hc    *http.Client
	// timeout bounds each request that is not a stream.
	timeout time.Duration
}

// New returns a client for the control plane at baseURL (scheme and host,
// with or without a path prefix in front of /api/v1). hc nil means a
// default http.Client; it should have no overall Timeout, or event
// streams end when it passes.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not a control plane URL: want http://host:port or https://host", baseURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: hc, timeout: 30 * time.Second}, nil
}

// URL is the control plane's base URL.
func (c *Client) URL() string { return c.base }

// Error is a response with a status of 400 or more. When the body was
// problem+json (RFC 9457) its fields are filled in; otherwise Detail holds
// the start of the body.
type Error struct {
	Status    int          `json:"status"`
	Title     string       `json:"title"`
	Detail    string       `json:"detail"`
	Errors    []FieldError `json:"errors"`
	RequestID string       `json:"request_id"`
	// Method and Path are the request's.
	Method, Path string `json:"-"`
}

// FieldError names one offending field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, msg)
}

// UnreachableError is a request that got no response at all: the address
// refuses connections, does not resolve, or times out.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return "cannot reach the control plane at " + e.URL + ": " + e.Err.Error()
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsStatus reports whether err is an *Error with the given status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// do sends a request and decodes a JSON response into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(rctx, method, path, body, "application/json")
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return &UnreachableError{URL: c.base, Err: fmt.Errorf("%s %s: no answer within %s", method, path, c.timeout)}
		}
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: reading the response: %w", method, path, err)
	}
	return nil
}

// send makes the request and returns a response with a status below 400;
// any other status is an *Error and the body is closed.
func (c *Client) send(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/api/v1"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, err
		}
		var ne net.Error
		var op *net.OpError
		var dns *net.DNSError
		if errors.As(err, &op) && op.Op == "dial" || errors.As(err, &dns) || errors.As(err, &ne) && ne.Timeout() {
			return nil, &UnreachableError{URL: c.base, Err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(resp, method, path)
}

func readError(resp *http.Response, method, path string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		_ = json.Unmarshal(b, e)
	}
	if e.Detail == "" && e.Title == "" {
		if s := strings.TrimSpace(string(b)); s != "" && len(s) < 300 {
			e.Detail = s
		}
	}
	e.Status, e.Method, e.Path = resp.StatusCode, method, path
	return e
}

// page is one page of a list.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// listAll follows next_cursor to the end of a list.
func listAll[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var all []T
	cursor := ""
	for {
		p := path + "?limit=200"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var pg page[T]
		if err := c.do(ctx, http.MethodGet, p, nil, &pg); err != nil {
			return nil, err
		}
		all = append(all, pg.Items...)
		if pg.NextCursor == "" || len(pg.Items) == 0 {
			return all, nil
		}
		cursor = pg.NextCursor
	}
}

// Me is the caller, as GET /me answers it.
type Me struct {
	// Kind is "token" for an API token, "user" for a browser session.
	Kind  string `json:"kind"`
	Token *Token `json:"token"`
}

// Token is an API token's record (never its secret).
type Token struct {
	ID        string     `json:"id"`
	ProjectID string     `json:"project_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Prefix    string     `json:"prefix"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Me says who the token is.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var m Me
	return m, c.do(ctx, http.MethodGet, "/me", nil, &m)
}

// Project is a project.
type Project struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Role is the caller's role in it.
	Role string `json:"role"`
}

// Project gets a project.
func (c *Client) Project(ctx context.Context, id string) (Project, error) {
	var p Project
	return p, c.do(ctx, http.MethodGet, "/projects/"+url.PathEscape(id), nil, &p)
}

// Pipeline is a pipeline.
type Pipeline struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	LatestRevision int    `json:"latest_revision"`
}

// Pipelines lists a project's pipelines.
func (c *Client) Pipelines(ctx context.Context, project string) ([]Pipeline, error) {
	return listAll[Pipeline](ctx, c, "/projects/"+url.PathEscape(project)+"/pipelines")
}

// Fleet is a fleet.
type Fleet struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Module string `json:"module"`
	Status string `json:"status"`
}

// Fleets lists a project's fleets.
func (c *Client) Fleets(ctx context.Context, project string) ([]Fleet, error) {
	return listAll[Fleet](ctx, c, "/projects/"+url.PathEscape(project)+"/fleets")
}

// Deployment is a pipeline's target revision on a fleet and how the fleet
// is doing with it: Synced, OutOfSync, Progressing or Degraded.
type Deployment struct {
	ID             string `json:"id"`
	FleetID        string `json:"fleet_id"`
	PipelineID     string `json:"pipeline_id"`
	RevisionNumber int    `json:"revision_number"`
	Status         string `json:"status"`
	// Message explains the status, when the API returns one.
	Message string `json:"message"`
}

// Deployments lists a project's deployments.
func (c *Client) Deployments(ctx context.Context, project string) ([]Deployment, error) {
	return listAll[Deployment](ctx, c, "/projects/"+url.PathEscape(project)+"/deployments")
}

// Runner is a registered runner and its last status report.
type Runner struct {
	ID         string                  `json:"id"`
	FleetID    string                  `json:"fleet_id"`
	Name       string                  `json:"name"`
	Version    string                  `json:"version"`
	LastSeenAt time.Time               `json:"last_seen_at"`
	Live       bool                    `json:"live"`
	Generation int64                   `json:"generation"`
	Report     agentproto.StatusReport `json:"report"`
	Revoked    bool                    `json:"revoked"`
}

// Runners lists a fleet's runners.
func (c *Client) Runners(ctx context.Context, project, fleet string) ([]Runner, error) {
	return listAll[Runner](ctx, c, "/projects/"+url.PathEscape(project)+"/fleets/"+url.PathEscape(fleet)+"/runners")
}

// Rollout is a rollout of a commit (or an API change) on one fleet.
type Rollout struct {
	ID         string     `json:"id"`
	FleetID    string     `json:"fleet_id"`
	Fleet      string     `json:"fleet"`
	Commit     string     `json:"commit"`
	FromCommit string     `json:"from_commit"`
	Message    string     `json:"message"`
	Strategy   string     `json:"strategy"`
	Phase      string     `json:"phase"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason"`
	Paused     bool       `json:"paused"`
	Promoted   []string   `json:"promoted_runners"`
	Revert     string     `json:"revert_commit"`
	Pipelines  []string   `json:"pipelines"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Rollouts lists a project's rollouts, oldest first.
func (c *Client) Rollouts(ctx context.Context, project string) ([]Rollout, error) {
	return listAll[Rollout](ctx, c, "/projects/"+url.PathEscape(project)+"/rollouts")
}

func rolloutPath(project, id string) string {
	return "/projects/" + url.PathEscape(project) + "/rollouts/" + url.PathEscape(id)
}

// Rollout gets a rollout.
func (c *Client) Rollout(ctx context.Context, project, id string) (Rollout, error) {
	var r Rollout
	return r, c.do(ctx, http.MethodGet, rolloutPath(project, id), nil, &r)
}

// Rollback rolls a rollout back; reason may be empty.
func (c *Client) Rollback(ctx context.Context, project, id, reason string) (Rollout, error) {
	var r Rollout
	return r, c.do(ctx, http.MethodPost, rolloutPath(project, id)+"/rollback", map[string]string{"reason": reason}, &r)
}

// Pause pauses a rollout.
func (c *Client) Pause(ctx context.Context, project, id string) (Rollout, error) {
	var r Rollout
	return r, c.do(ctx, http.MethodPost, rolloutPath(project, id)+"/pause", nil, &r)
}

// Resume resumes a paused rollout.
func (c *Client) Resume(ctx context.Context, project, id string) (Rollout, error) {
	var r Rollout
	return r, c.do(ctx, http.MethodPost, rolloutPath(project, id)+"/resume", nil, &r)
}

// Event is one line of a rollout's history.
type Event struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// StreamEvents streams a rollout's events as server-sent events: it calls
// onEvent for each, from the first, and returns the finished rollout when
// the server ends the stream with it. A stream that ends early (the
// control plane restarted) returns io.ErrUnexpectedEOF; the caller may
// call again and skip the events it has seen.
func (c *Client) StreamEvents(ctx context.Context, project, id string, onEvent func(Event) error) (Rollout, error) {
	path := rolloutPath(project, id) + "/events"
	resp, err := c.send(ctx, http.MethodGet, path, nil, "text/event-stream")
	if err != nil {
		return Rollout{}, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return Rollout{}, fmt.Errorf("GET %s: the control plane answered %q, not an event stream", path, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var name string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			if data.Len() > 0 {
				switch name {
				case "end":
					var r Rollout
					if err := json.Unmarshal([]byte(data.String()), &r); err != nil {
						return Rollout{}, fmt.Errorf("GET %s: a bad end event: %w", path, err)
					}
					return r, nil
				case "", "message":
					var e Event
					if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
						return Rollout{}, fmt.Errorf("GET %s: a bad event: %w", path, err)
					}
					if err := onEvent(e); err != nil {
						return Rollout{}, err
					}
				}
			}
			name = ""
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			name = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return Rollout{}, fmt.Errorf("GET %s: %w: %v", path, io.ErrUnexpectedEOF, err)
	}
	if ctx.Err() != nil {
		return Rollout{}, ctx.Err()
	}
	return Rollout{}, fmt.Errorf("GET %s: the stream ended before the rollout did: %w", path, io.ErrUnexpectedEOF)
}
