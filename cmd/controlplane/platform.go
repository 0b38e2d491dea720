package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/gitops/agentserver"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/gitserver"
	"github.com/sluicehq/sluice/gitops/gitstore"
	"github.com/sluicehq/sluice/gitops/push"
	"github.com/sluicehq/sluice/gitops/rollout"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/pgnotify"
	"github.com/sluicehq/sluice/provisioning/terraform"
	"github.com/sluicehq/sluice/web"
)

// gitops is the control plane's GitOps half: the git server, the runner
// protocol and the rollout reconciler, over the same database as the API.
type gitops struct {
	repos      *gitstore.Store
	git        *gitserver.Server
	agents     *agentserver.Server
	listener   *pgnotify.Listener
	reconciler *rollout.Reconciler
	reverter   *push.Reverter
	hook       *push.Hook
}

func newGitOps(pool *pgxpool.Pool, reg *catalog.Registry, log *slog.Logger) (*gitops, error) {
	store := deploy.New(pool, reg)
	repos, err := gitstore.New(pool)
	if err != nil {
		return nil, err
	}
	g := &gitops{repos: repos, listener: pgnotify.New(pool, deploy.Channel, log), hook: push.New(store, reg)}
	g.agents = agentserver.New(store, g.listener, log)
	// The reverter's git server comes in attach: the git server needs the
	// API's token checks, and the API needs rollback from here.
	g.reverter = &push.Reverter{Repos: repos, Access: func(ctx context.Context, projectID uuid.UUID) (gitserver.Access, error) {
		a := gitserver.Access{ProjectID: projectID, CanWrite: true}
		err := pool.QueryRow(ctx, `SELECT o.name, p.name, p.deploy_branch FROM projects p JOIN organizations o ON o.id = p.org_id WHERE p.id = $1`,
			projectID).Scan(&a.Org, &a.Project, &a.DeployBranch)
		return a, err
	}}
	if g.reconciler, err = rollout.New(pool, rollout.Logger(log), rollout.WithReverter(g.reverter)); err != nil {
		return nil, err
	}
	return g, nil
}

// attach builds the git server with the API's token checks.
func (g *gitops) attach(srv *api.Server, log *slog.Logger) error {
	auth := func(ctx context.Context, r *http.Request, org, project string, write bool) (gitserver.Access, error) {
		ga, err := srv.GitAuthorize(ctx, r, org, project, write)
		switch {
		case errors.Is(err, api.ErrGitUnauthorized):
			return gitserver.Access{}, gitserver.ErrUnauthorized
		case errors.Is(err, api.ErrGitNotFound):
			return gitserver.Access{}, gitserver.ErrNotFound
		case errors.Is(err, api.ErrGitForbidden):
			return gitserver.Access{}, gitserver.ErrForbidden
		case err != nil:
			return gitserver.Access{}, err
		}
		return gitserver.Access{ProjectID: ga.ProjectID, Org: ga.Org, Project: ga.Project, DeployBranch: ga.DeployBranch,
			CanWrite: ga.Role.AtLeast("developer"), Principal: ga.UserID}, nil
	}
	git, err := gitserver.New(g.repos, auth, g.hook, gitserver.Logger(log))
	if err != nil {
		return err
	}
	g.git = git
	g.reverter.Git = git
	return nil
}

// rollback is the API's Config.Rollback: the reconciler with the git
// server, so a rollback writes its revert commit.
func (g *gitops) rollback(ctx context.Context, projectID, rolloutID uuid.UUID, reason string) error {
	return g.reconciler.Rollback(ctx, projectID, rolloutID, reason)
}

// handler routes git, the runner protocol and the API.
func (g *gitops) handler(apiHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	// A push runs every test of the commit before it answers: give git
	// longer than the API's one-minute write timeout.
	git := http.StripPrefix("/git", g.git)
	mux.Handle("/git/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(5 * time.Minute))
		_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Minute))
		git.ServeHTTP(w, r)
	}))
	mux.Handle("/api/v1/agent/", g.agents)
	mux.Handle("/api/", apiHandler)
	// Everything else is the IDE's single-page app (make web builds it).
	mux.Handle("/", web.Handler())
	return mux
}

// ideRepository is the API's Config.Repository: the IDE reads the deploy
// branch from the git store and commits through the git server, so an
// IDE commit is validated and recorded exactly as a push.
type ideRepository struct{ g *gitops }

func (r ideRepository) Files(ctx context.Context, projectID uuid.UUID, branch string) (string, map[string][]byte, error) {
	head, err := r.g.repos.Head(ctx, projectID, branch)
	if errors.Is(err, gitstore.ErrRefNotFound) {
		return "", map[string][]byte{}, nil
	}
	if err != nil {
		return "", nil, err
	}
	files, err := gitstore.TreeFiles(r.g.repos.Repo(ctx, projectID), head, push.MaxFiles, push.MaxBytes)
	return head.String(), files, err
}

func (r ideRepository) Commit(ctx context.Context, c api.RepositoryCommit) (string, *api.RepositoryRejection, error) {
	if r.g.git == nil {
		return "", nil, errors.New("ide: the git server is not attached")
	}
	a := gitserver.Access{ProjectID: c.ProjectID, Org: c.Org, Project: c.Project, DeployBranch: c.Branch, CanWrite: true, Principal: c.UserID}
	parent := plumbing.ZeroHash
	if c.Parent != "" {
		parent = plumbing.NewHash(c.Parent)
	}
	sha, rej, err := r.g.git.Commit(ctx, a, gitserver.CommitRequest{Branch: c.Branch, Parent: parent, Files: c.Files, Message: c.Message,
		Author: object.Signature{Name: c.AuthorName, Email: c.Author}})
	switch {
	case errors.Is(err, gitstore.ErrStaleRef):
		return "", nil, fmt.Errorf("%w: %w", api.ErrRepositoryMoved, err)
	case err != nil:
		return "", nil, err
	case rej != nil:
		return "", &api.RepositoryRejection{Reason: rej.Reason, Lines: rej.Lines}, nil
	}
	return sha.String(), nil, nil
}

// run runs the notification listener and the reconciler until ctx ends.
func (g *gitops) run(ctx context.Context) {
	go func() { _ = g.listener.Run(ctx) }()
	go func() { _ = g.reconciler.Run(ctx) }()
}

// newProvisioning builds the reconciler of fleet runs (Terraform). A
// missing terraform or runner binary is not fatal: the control plane
// serves, and runs that need them fail saying what to install.
func newProvisioning(ctx context.Context, cfg config, pool *pgxpool.Pool, log *slog.Logger) (*terraform.Reconciler, error) {
	var dirs []string
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(self), "..", ".tools", "bin"))
	}
	dirs = append(dirs, filepath.Join(".tools", "bin"))
	bin, err := terraform.FindBinary(ctx, cfg.terraformPath, dirs...)
	if err != nil {
		log.Warn("provisioning: fleet runs will fail until terraform is installed", "err", err)
	}
	runner, err := findRunner(cfg.runnerPath)
	if err != nil {
		log.Warn("provisioning: fleets of the local module need the runner binary", "err", err)
	}
	root := cfg.fleetsDir
	if root == "" {
		root = filepath.Join(cfg.dataDir, "fleets")
	}
	return terraform.New(terraform.Config{Pool: pool, DatabaseURL: cfg.databaseURL, Root: root, Binary: bin,
		ControlPlaneURL: controlPlaneURL(cfg), RunnerBinary: runner, Logger: log})
}

// controlPlaneURL is where runners reach the control plane: the public
// URL, else the listen address (a wildcard host means this host).
func controlPlaneURL(cfg config) string {
	if cfg.publicURL != "" {
		return strings.TrimRight(cfg.publicURL, "/")
	}
	host, port, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
