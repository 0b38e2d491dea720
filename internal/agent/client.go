package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// ErrBootstrapRefused means the control plane refused the bootstrap token
// (401): it was spent by an earlier registration, expired or never
// existed. Only a new token helps.
var ErrBootstrapRefused = errors.New("the control plane refused the bootstrap token (401): it is spent, expired or unknown; create a new one for the fleet")

// ErrCredentialRefused means the control plane refused the runner
// credential (401): the runner was deleted or its credential revoked. The
// agent keeps running what it has applied; only registering again, with a
// new bootstrap token, restores contact.
var ErrCredentialRefused = errors.New("the control plane refused this runner's credential (401): it was revoked or is unknown")

// StatusError is an answer of the control plane other than success and
// 401 (which are ErrBootstrapRefused and ErrCredentialRefused).
type StatusError struct {
	// Op is the call: "register", "poll", "bundle <digest>", "status".
	Op   string
	Code int
	// Detail is the problem+json title and detail, when given.
	Detail string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: control plane answered %d %s", e.Op, e.Code, http.StatusText(e.Code))
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Temporary reports whether trying again later may succeed: server errors
// and rate limits, not refusals.
func (e *StatusError) Temporary() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout
}

// temporary reports whether err may go away by itself: a transport failure
// (connection refused, timeout, reset) or a temporary StatusError. A
// refused credential is not temporary, but retried slowly all the same.
func temporary(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	return !errors.Is(err, ErrCredentialRefused) && !errors.Is(err, ErrBootstrapRefused)
}

// maxBody caps what is read from the control plane: a bundle is YAML and
// small side files.
const maxBody = 64 << 20

// client speaks agentproto to one control plane.
type client struct {
	base string
	http *http.Client
}

// do makes one call. token authenticates it (never logged, never in an
// error); in, when not nil, is the JSON body; out, when not nil, receives
// a JSON answer; raw, when not nil, receives the answer's bytes.
func (c *client) do(ctx context.Context, op, method, path, token string, in, out any, raw *[]byte) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", op, err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("%s: the answer is over %d bytes", op, maxBody)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if op == "register" {
			return ErrBootstrapRefused
		}
		return fmt.Errorf("%s: %w", op, ErrCredentialRefused)
	}
	if resp.StatusCode/100 != 2 {
		return &StatusError{Op: op, Code: resp.StatusCode, Detail: problemDetail(data)}
	}
	if raw != nil {
		*raw = data
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decoding the answer: %w", op, err)
		}
	}
	return nil
}

// problemDetail extracts the readable part of an application/problem+json
// body.
func problemDetail(data []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(data, &p) != nil {
		return ""
	}
	switch {
	case p.Detail != "" && p.Title != "":
		return p.Title + ": " + p.Detail
	case p.Detail != "":
		return p.Detail
	}
	return p.Title
}

func (c *client) register(ctx context.Context, token string, req agentproto.RegisterRequest) (*agentproto.RegisterResponse, error) {
	var resp agentproto.RegisterResponse
	if err := c.do(ctx, "register", http.MethodPost, agentproto.RegisterPath, token, req, &resp, nil); err != nil {
		return nil, err
	}
	if resp.Credential == "" || resp.RunnerID == "" {
		return nil, errors.New("register: the answer has no credential or runner id")
	}
	return &resp, nil
}

// poll long-polls the assignments: the control plane answers when their
// generation differs from gen, or after wait with the same one.
func (c *client) poll(ctx context.Context, cred string, gen int64, wait time.Duration) (*agentproto.Assignments, error) {
	// The request may take the whole wait, plus a margin for the answer.
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	q := url.Values{"generation": {strconv.FormatInt(gen, 10)}, "wait": {wait.String()}}
	var as agentproto.Assignments
	if err := c.do(ctx, "poll", http.MethodGet, agentproto.AssignmentsPath+"?"+q.Encode(), cred, nil, &as, nil); err != nil {
		return nil, err
	}
	return &as, nil
}

// bundle downloads a bundle's bytes; the caller verifies them.
func (c *client) bundle(ctx context.Context, cred, digest string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var data []byte
	if err := c.do(ctx, "bundle "+digest, http.MethodGet, agentproto.BundlesPath+digest, cred, nil, nil, &data); err != nil {
		return nil, err
	}
	return data, nil
}

func (c *client) status(ctx context.Context, cred string, rep *agentproto.StatusReport) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return c.do(ctx, "status", http.MethodPost, agentproto.StatusPath, cred, rep, nil, nil)
}
