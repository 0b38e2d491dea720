// Package gittest runs a real git server for tests: a throwaway
// PostgreSQL database (internal/pgcluster/pgtest), one project's
// repository in it, the gitserver mounted at /git/ on an httptest.Server,
// and the git CLI in an isolated HOME to talk to it.
//
// A test binary using it must run its tests through pgtest:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package gittest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/gitops/gitserver"
	"github.com/sluicehq/sluice/gitops/gitstore"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

// Tokens the test Authorizer accepts as HTTP basic auth passwords.
const (
	WriteToken = "write-token"
	ReadToken  = "read-token"
)

// Options configure NewServer.
type Options struct {
	Hook         gitserver.Hook // nil accepts every fast-forward push
	StoreOpts    []gitstore.Opt
	ServerOpts   []gitserver.Opt
	Org, Project string // default "acme" and "demo"
}

// Server is a git server over one project's repository.
type Server struct {
	HTTP    *httptest.Server
	Pool    *pgxpool.Pool
	Store   *gitstore.Store
	Git     *gitserver.Server
	Project uuid.UUID
	Org     string
	Name    string
	// Access is what WriteToken grants; Commit needs it.
	Access gitserver.Access
}

// NewServer starts a server; everything stops when the test ends.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Org == "" {
		o.Org = "acme"
	}
	if o.Project == "" {
		o.Project = "demo"
	}
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	orgID, projectID := uuid.New(), uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO organizations (id, name) VALUES ($1, $2)`, orgID, o.Org); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO projects (id, org_id, name) VALUES ($1, $2, $3)`, projectID, orgID, o.Project); err != nil {
		t.Fatal(err)
	}
	st, err := gitstore.New(pool, o.StoreOpts...)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Pool: pool, Store: st, Project: projectID, Org: o.Org, Name: o.Project}
	s.Access = gitserver.Access{ProjectID: projectID, Org: o.Org, Project: o.Project, DeployBranch: "main", CanWrite: true, Principal: "test"}
	auth := func(ctx context.Context, r *http.Request, org, project string, write bool) (gitserver.Access, error) {
		_, token, ok := r.BasicAuth()
		if !ok {
			return gitserver.Access{}, gitserver.ErrUnauthorized
		}
		if org != s.Org || project != s.Name {
			return gitserver.Access{}, gitserver.ErrNotFound
		}
		switch token {
		case WriteToken:
			return s.Access, nil
		case ReadToken:
			a := s.Access
			a.CanWrite = false
			return a, nil
		}
		return gitserver.Access{}, gitserver.ErrUnauthorized
	}
	s.Git, err = gitserver.New(st, auth, o.Hook, o.ServerOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Mount("/git", s.Git)
	s.HTTP = httptest.NewServer(r)
	t.Cleanup(s.HTTP.Close)
	return s
}

// URL is the repository's clone URL with token as password ("" for none).
func (s *Server) URL(token string) string {
	host := strings.TrimPrefix(s.HTTP.URL, "http://")
	if token != "" {
		host = "x:" + token + "@" + host
	}
	return fmt.Sprintf("http://%s/git/%s/%s.git", host, s.Org, s.Name)
}

// Git runs the git CLI with a HOME of its own, no prompts and a fixed
// identity, so tests do not depend on the machine's git configuration.
type Git struct {
	t   testing.TB
	env []string
}

// NewGit returns a git runner for t.
func NewGit(t testing.TB) *Git {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	home := t.TempDir()
	env := append(os.Environ(),
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Test Author", "GIT_COMMITTER_EMAIL=author@example.com",
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=init.defaultBranch", "GIT_CONFIG_VALUE_0=main",
		"GIT_CONFIG_KEY_1=advice.detachedHead", "GIT_CONFIG_VALUE_1=false",
	)
	return &Git{t: t, env: env}
}

// Run runs git in dir and returns its combined output and error.
func (g *Git) Run(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = g.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Must runs git in dir and fails the test if it fails.
func (g *Git) Must(dir string, args ...string) string {
	g.t.Helper()
	out, err := g.Run(dir, args...)
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Clone clones url into a new temporary directory and returns it.
func (g *Git) Clone(url string) string {
	g.t.Helper()
	dir := filepath.Join(g.t.TempDir(), "clone")
	g.Must("", "clone", "-q", url, dir)
	return dir
}

// CommitFiles writes files (by slash path) in the work tree dir and
// commits them all with message, returning the new commit's hash.
func (g *Git) CommitFiles(dir, message string, files map[string]string) string {
	g.t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.Must(dir, "add", "-A")
	g.Must(dir, "commit", "-q", "-m", message)
	return strings.TrimSpace(g.Must(dir, "rev-parse", "HEAD"))
}
