package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/jackc/pgx/v5"
)

// IdempotencyHeader names the key a client sends on POST so a retried
// request is applied once: the first response is stored and replayed.
const IdempotencyHeader = "Idempotency-Key"

// replayedHeader marks a replayed response.
const replayedHeader = "Idempotent-Replayed"

// captureWriter tees a handler's response so it can be stored.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// setReplayBody replaces what a replay returns, for responses that hold a
// secret shown only once (a new token): the stored copy leaves it out.
func setReplayBody(r *http.Request, body []byte) {
	if p, ok := r.Context().Value(replayBodyKey).(*[]byte); ok {
		*p = body
	}
}

// idempotent runs a POST, honouring Idempotency-Key. The key is claimed
// with an insert before the handler runs, so two concurrent retries cannot
// both apply; a key reused for a different request is a 422; a 5xx frees
// the key so the client can retry.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, rt route) {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" {
		if err := rt.handle(w, r); err != nil {
			s.writeProblem(w, r, err)
		}
		return
	}
	if len(key) > 255 {
		s.writeProblem(w, r, badRequest("Idempotency-Key is too long", FieldError{Field: IdempotencyHeader, Detail: "at most 255 characters"}))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if p := bodyTooLarge(err); p != nil {
			s.writeProblem(w, r, p)
			return
		}
		s.writeProblem(w, r, badRequest("could not read the body"))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))
	ctx := r.Context()
	principal := PrincipalFrom(ctx).key()

	tag, err := s.pool.Exec(ctx, `INSERT INTO idempotency_keys (principal, key, method, path, request_hash)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, principal, key, r.Method, r.URL.Path, sum[:])
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if tag.RowsAffected() == 0 {
		s.replay(w, r, principal, key, sum[:])
		return
	}

	var replayBody []byte
	cw := &captureWriter{ResponseWriter: w}
	r = r.WithContext(context.WithValue(ctx, replayBodyKey, &replayBody))
	if err := rt.handle(cw, r); err != nil {
		s.writeProblem(cw, r, err)
	}
	// The request's outcome is settled; storing it must not depend on the
	// client still waiting.
	store := context.WithoutCancel(ctx)
	if cw.status >= 500 || cw.status == 0 {
		_, _ = s.pool.Exec(store, "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2", principal, key)
		return
	}
	stored := cw.body.Bytes()
	if replayBody != nil {
		stored = replayBody
	}
	headers := map[string]string{}
	for _, h := range []string{"Content-Type", "Location", "ETag"} {
		if v := cw.Header().Get(h); v != "" {
			headers[h] = v
		}
	}
	if _, err := s.pool.Exec(store, `UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
		WHERE principal = $1 AND key = $2`, principal, key, cw.status, headers, stored); err != nil {
		s.log.ErrorContext(ctx, "store idempotent response", "err", err, "request_id", requestID(ctx))
	}
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request, principal, key string, sum []byte) {
	var (
		hash    []byte
		status  int
		headers map[string]string
		body    []byte
	)
	err := s.pool.QueryRow(r.Context(), `SELECT request_hash, status, headers, body FROM idempotency_keys
		WHERE principal = $1 AND key = $2`, principal, key).Scan(&hash, &status, &headers, &body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The first attempt failed with a 5xx and freed the key meanwhile.
		s.writeProblem(w, r, conflict("a request with this Idempotency-Key just failed; retry it"))
		return
	case err != nil:
		s.writeProblem(w, r, err)
		return
	case !bytes.Equal(hash, sum):
		s.writeProblem(w, r, invalid(FieldError{Field: IdempotencyHeader,
			Detail: "this key was already used for a different request; use a new key for a new request"}))
		return
	case status == 0:
		s.writeProblem(w, r, conflict("a request with this Idempotency-Key is still in progress"))
		return
	}
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.Header().Set(replayedHeader, "true")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// mustJSON marshals v for a replay body.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
