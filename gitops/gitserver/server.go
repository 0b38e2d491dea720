// Package gitserver serves each project's Git repository (stored by
// gitops/gitstore) over Git's smart HTTP protocol, v0/v1, as the git CLI
// speaks it:
//
//	GET  /{org}/{project}.git/info/refs?service=git-upload-pack|git-receive-pack
//	POST /{org}/{project}.git/git-upload-pack
//	POST /{org}/{project}.git/git-receive-pack
//
// Mount the Server under the control plane's router at /git (chi's Mount,
// or http.StripPrefix("/git", srv)).
//
// Who may do what is the caller's business, through the Authorizer given
// to New. What a push may contain is the Hook's: a push is parsed into
// memory, refused if a ref would move backwards, checked by Hook.Check
// (which sees every file of the pushed commits and may reject the push
// with lines shown in the pusher's terminal), and only then stored, in one
// PostgreSQL transaction with the ref updates (compare-and-swap) and
// Hook.Accepted. Server-side commits (Commit) take the same path.
package gitserver

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/gitstore"
)

// Access is what a request may do in one repository.
type Access struct {
	ProjectID    uuid.UUID
	Org, Project string
	DeployBranch string // "main" when empty
	CanWrite     bool
	Principal    any // opaque to this package, passed to hooks
}

func (a Access) deployRef() plumbing.ReferenceName {
	if a.DeployBranch == "" {
		return plumbing.NewBranchReferenceName(gitstore.DefaultBranch)
	}
	return plumbing.NewBranchReferenceName(a.DeployBranch)
}

// Authorizer decides whether the request r may read (write false) or push
// to (write true) the repository of org/project, reading the credentials
// (HTTP basic auth, an API token as password) itself. It returns
// ErrUnauthorized, ErrForbidden or ErrNotFound (possibly wrapped) to
// refuse; any other error is a server error.
type Authorizer func(ctx context.Context, r *http.Request, org, project string, write bool) (Access, error)

// Errors an Authorizer returns.
var (
	// ErrUnauthorized: no or bad credentials. Answered 401 with a Basic
	// challenge, so git asks for credentials (or its credential helper).
	ErrUnauthorized = errors.New("gitserver: authentication required")
	// ErrForbidden: the credentials may not do this. Answered 403.
	ErrForbidden = errors.New("gitserver: forbidden")
	// ErrNotFound: no such repository, or one the caller may not see.
	// Answered 404.
	ErrNotFound = errors.New("gitserver: repository not found")
)

// RefUpdate is one ref a push moves: Old is plumbing.ZeroHash for a new
// ref, New is plumbing.ZeroHash for a deletion.
type RefUpdate = gitstore.RefUpdate

// Push is a push (or a server-side commit) on its way in.
type Push struct {
	Access  Access
	Updates []RefUpdate
	// Objects holds the pushed objects over the stored ones: read the
	// pushed commits and their files through it (gitstore.TreeFiles).
	Objects storer.EncodedObjectStorer
	// Progress takes lines shown as "remote: ..." in git push's output
	// (discarded when the client cannot show them, and for Commit).
	Progress io.Writer
}

// Rejection refuses a push: Reason is shown after each ref
// ("! [remote rejected] main -> main (Reason)"), Lines on the pusher's
// terminal before it, each as "remote: <line>".
type Rejection struct {
	Reason string
	Lines  []string
}

// Hook checks and records pushes.
type Hook interface {
	// Check runs before anything is stored. A non-nil Rejection refuses
	// the whole push; an error is a server error (the push fails too).
	Check(ctx context.Context, p *Push) (*Rejection, error)
	// Accepted runs inside the transaction that stores the objects and
	// moves the refs; an error rolls both back.
	Accepted(ctx context.Context, tx pgx.Tx, p *Push) error
}

// Opt is an option of New.
type Opt func(*options)

type options struct {
	maxPush int64
	log     *slog.Logger
	agent   string
}

// DefaultMaxPushSize is the default of MaxPushSize.
const DefaultMaxPushSize int64 = 64 << 20

// MaxPushSize sets the largest request body (packfile) a push may send,
// default 64 MiB.
func MaxPushSize(n int64) Opt { return func(o *options) { o.maxPush = n } }

// Logger sets where server errors are logged, default slog.Default().
func Logger(l *slog.Logger) Opt { return func(o *options) { o.log = l } }

// Server is the smart HTTP Git server. It is an http.Handler.
type Server struct {
	store *gitstore.Store
	auth  Authorizer
	hook  Hook
	cfg   options
	mux   chi.Router
}

// New returns a Server for the repositories in store. hook may be nil to
// accept every push that moves its refs forward.
func New(store *gitstore.Store, auth Authorizer, hook Hook, opts ...Opt) (*Server, error) {
	cfg := options{maxPush: DefaultMaxPushSize, agent: "sluice"}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case store == nil:
		return nil, errors.New("gitserver: nil store")
	case auth == nil:
		return nil, errors.New("gitserver: nil Authorizer")
	case cfg.maxPush <= 0:
		return nil, fmt.Errorf("gitserver: MaxPushSize %d must be positive", cfg.maxPush)
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	if hook == nil {
		hook = acceptAll{}
	}
	s := &Server{store: store, auth: auth, hook: hook, cfg: cfg}
	r := chi.NewRouter()
	r.Get("/{org}/{repo}/info/refs", s.infoRefs)
	r.Post("/{org}/{repo}/git-upload-pack", s.uploadPack)
	r.Post("/{org}/{repo}/git-receive-pack", s.receivePack)
	s.mux = r
	return s, nil
}

type acceptAll struct{}

func (acceptAll) Check(context.Context, *Push) (*Rejection, error) { return nil, nil }
func (acceptAll) Accepted(context.Context, pgx.Tx, *Push) error    { return nil }

// ServeHTTP serves the routes in the package comment, relative to where
// the Server is mounted.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authorize runs the Authorizer and answers the request itself when it
// refuses, returning false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, write bool) (Access, bool) {
	org := chi.URLParam(r, "org")
	project := strings.TrimSuffix(chi.URLParam(r, "repo"), ".git")
	a, err := s.auth(r.Context(), r, org, project, write)
	switch {
	case err == nil && write && !a.CanWrite:
		err = ErrForbidden
	case err == nil:
		return a, true
	}
	switch {
	case errors.Is(err, ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Basic realm="sluice"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
	case errors.Is(err, ErrForbidden):
		msg := "you may not read this repository"
		if write {
			msg = "you may not push to this repository"
		}
		http.Error(w, msg, http.StatusForbidden)
	case errors.Is(err, ErrNotFound):
		http.Error(w, "repository not found", http.StatusNotFound)
	default:
		s.cfg.log.ErrorContext(r.Context(), "git authorization failed", "org", org, "project", project, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
	return Access{}, false
}

// requestBody undoes the gzip git applies to large upload-pack requests.
func requestBody(r *http.Request) (io.ReadCloser, error) {
	if r.Header.Get("Content-Encoding") == "gzip" {
		return gzip.NewReader(r.Body)
	}
	return r.Body, nil
}

func noCache(w http.ResponseWriter) {
	w.Header().Set("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
}
