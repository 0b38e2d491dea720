package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/google/uuid"
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

// idempotencyLease is how long a claimed key is held for the request
// that claimed it. A request that died (a crashed replica, a killed
// connection) leaves its claim at status 0; after the lease a retry takes
// the key over instead of getting 409 until the record expires. A request
// still running past its lease cannot apply twice: its commit checks the
// claim (markApplied) and fails once a retry took it over.
const idempotencyLease = time.Minute

// maxIdempotencyKey bounds the key, which is stored and indexed as text.
const maxIdempotencyKey = 255

// idempotencyClaim is the key a request holds, carried in its context so
// the audit record of its change can mark the key applied in the same
// transaction.
type idempotencyClaim struct {
	principal, key string
	claim          uuid.UUID
}

// checkIdempotencyKey accepts 1-255 printable ASCII characters: keys are
// opaque tokens (UUIDs in practice), and anything else is stored as text,
// which must be UTF-8 without NUL.
func checkIdempotencyKey(key string) error {
	if len(key) > maxIdempotencyKey {
		return badRequest("Idempotency-Key is too long", FieldError{Field: IdempotencyHeader, Detail: "at most 255 characters"})
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] >= 0x7f {
			return badRequest("Idempotency-Key has a character outside printable ASCII",
				FieldError{Field: IdempotencyHeader, Detail: "must be printable ASCII, such as a UUID"})
		}
	}
	return nil
}

// idempotent runs a POST, honouring Idempotency-Key. The key is claimed
// with an insert before the handler runs, so two concurrent retries cannot
// both apply; a key reused for a different request is a 422; a 5xx frees
// the key so the client can retry, unless the change had committed.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, rt route) {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" {
		if err := rt.handle(w, r); err != nil {
			s.writeProblem(w, r, err)
		}
		return
	}
	if err := checkIdempotencyKey(key); err != nil {
		s.writeProblem(w, r, err)
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
	c := idempotencyClaim{principal: PrincipalFrom(ctx).key(), key: key, claim: uuid.New()}

	// Claim the key, or take over a claim whose lease passed without its
	// change committing: same request, status 0, not applied. The row lock
	// taken by ON CONFLICT DO UPDATE orders this against markApplied, and
	// the WHERE is re-checked on the row that lock finds.
	err = s.pool.QueryRow(ctx, `INSERT INTO idempotency_keys AS k (principal, key, method, path, request_hash, claim)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (principal, key) DO UPDATE SET claim = excluded.claim, claimed_at = now()
		WHERE k.status = 0 AND k.applied_at IS NULL AND k.request_hash = excluded.request_hash
			AND k.claimed_at < now() - make_interval(secs => $7)
		RETURNING k.claim`, c.principal, c.key, r.Method, r.URL.Path, sum[:], c.claim, idempotencyLease.Seconds()).Scan(new(uuid.UUID))
	if errors.Is(err, pgx.ErrNoRows) {
		s.replay(w, r, c, sum[:])
		return
	}
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}

	var replayBody []byte
	cw := &captureWriter{ResponseWriter: w}
	ctx = context.WithValue(context.WithValue(ctx, replayBodyKey, &replayBody), claimKey, c)
	r = r.WithContext(ctx)
	if err := rt.handle(cw, r); err != nil {
		s.writeProblem(cw, r, err)
	}
	// The request's outcome is settled; storing it must not depend on the
	// client still waiting.
	store := context.WithoutCancel(ctx)
	if cw.status >= 500 || cw.status == 0 {
		// Free the key for a retry, unless the change committed: then a
		// retry must learn that, not apply it again.
		_, _ = s.pool.Exec(store, `DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND claim = $3
			AND applied_at IS NULL`, c.principal, c.key, c.claim)
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
	// Only our own claim: a retry that took the key over stores its own.
	if _, err := s.pool.Exec(store, `UPDATE idempotency_keys SET status = $4, headers = $5, body = $6
		WHERE principal = $1 AND key = $2 AND claim = $3`, c.principal, c.key, c.claim, cw.status, headers, stored); err != nil {
		s.log.ErrorContext(ctx, "store idempotent response", "err", err, "request_id", requestID(ctx))
	}
}

// markApplied records, inside the transaction of a request's change, that
// the change committed with the request's key. It fails when the request
// no longer holds the key (a retry took it over after the lease), which
// rolls the change back: one key, one change.
func markApplied(ctx context.Context, tx pgx.Tx, e auditEntry) error {
	c, ok := ctx.Value(claimKey).(idempotencyClaim)
	if !ok {
		return nil
	}
	outcome := map[string]string{"action": e.action, "resource_type": e.resourceType, "resource_id": e.resourceID}
	// Renewing the lease here keeps a retry from calling the response
	// lost while the request is about to store it.
	tag, err := tx.Exec(ctx, `UPDATE idempotency_keys SET applied_at = coalesce(applied_at, now()), claimed_at = now(), outcome = $4
		WHERE principal = $1 AND key = $2 AND claim = $3`, c.principal, c.key, c.claim, outcome)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return conflict("this request ran past its Idempotency-Key lease and a retry took the key over; this request's change was not applied")
	}
	return nil
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request, c idempotencyClaim, sum []byte) {
	var (
		hash      []byte
		status    int
		headers   map[string]string
		body      []byte
		leaseLeft float64
		applied   bool
		outcome   map[string]string
	)
	err := s.pool.QueryRow(r.Context(), `SELECT request_hash, status, headers, body,
		extract(epoch FROM claimed_at + make_interval(secs => $3) - now()), applied_at IS NOT NULL, outcome
		FROM idempotency_keys WHERE principal = $1 AND key = $2`, c.principal, c.key, idempotencyLease.Seconds()).
		Scan(&hash, &status, &headers, &body, &leaseLeft, &applied, &outcome)
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
	case status == 0 && leaseLeft > 0:
		p := conflict("a request with this Idempotency-Key is still in progress; retry after its lease")
		p.retryAfter = int(math.Ceil(leaseLeft))
		s.writeProblem(w, r, p)
		return
	case status == 0 && applied:
		s.writeProblem(w, r, problem(http.StatusConflict, "idempotent-applied", fmt.Sprintf(
			"a request with this Idempotency-Key was applied (%s of %s %s) but ended before its response was stored; read the resource instead of retrying",
			outcome["action"], outcome["resource_type"], outcome["resource_id"])))
		return
	case status == 0:
		// Past its lease and not applied, yet not taken over: the claim
		// query saw it just before the lease ran out. A retry takes it.
		p := conflict("a request with this Idempotency-Key has just lost its lease; retry it")
		p.retryAfter = 1
		s.writeProblem(w, r, p)
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
