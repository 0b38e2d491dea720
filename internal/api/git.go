package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/identity"
)

// GitAccess is what an API token may do in a project's Git repository.
type GitAccess struct {
	ProjectID    uuid.UUID
	Org, Project string
	DeployBranch string
	// Role is the token's role in the project: viewers may clone and
	// fetch, developers and owners may push.
	Role identity.Role
	// UserID is the token's creator, recorded as the author of revisions.
	UserID uuid.UUID
}

// Errors of GitAuthorize, for the git server to map to 401, 404 and 403.
var (
	ErrGitUnauthorized = errors.New("git: send an API token as the password (HTTP basic auth)")
	ErrGitNotFound     = errors.New("git: no such repository")
	ErrGitForbidden    = errors.New("git: this needs the developer role in the project")
)

// GitAuthorize authenticates a git smart-HTTP request: HTTP basic auth
// whose password is an API token (the user name is ignored), with the same
// checks as the API (revoked, expired, membership). A token of another
// project, or an unknown repository, is "not found" so repository names do
// not leak; write needs the developer role.
func (s *Server) GitAuthorize(ctx context.Context, r *http.Request, org, project string, write bool) (GitAccess, error) {
	var ga GitAccess
	_, secret, ok := r.BasicAuth()
	if !ok || secret == "" {
		return ga, ErrGitUnauthorized
	}
	p, err := s.tokenPrincipal(ctx, "Bearer "+secret)
	if err != nil {
		var pr *Problem
		if errors.As(err, &pr) {
			return ga, ErrGitUnauthorized
		}
		return ga, err
	}
	err = s.pool.QueryRow(ctx, `SELECT p.id, o.name, p.name, p.deploy_branch FROM projects p JOIN organizations o ON o.id = p.org_id
		WHERE o.name = $1 AND p.name = $2`, org, project).Scan(&ga.ProjectID, &ga.Org, &ga.Project, &ga.DeployBranch)
	if errors.Is(err, pgx.ErrNoRows) {
		return ga, ErrGitNotFound
	}
	if err != nil {
		return ga, err
	}
	pa, err := s.resolveProject(ctx, p, ga.ProjectID.String())
	if err != nil {
		return ga, ErrGitNotFound
	}
	ga.Role, ga.UserID = pa.Role, p.UserID
	if write && !pa.Role.AtLeast(identity.Developer) {
		return ga, ErrGitForbidden
	}
	return ga, nil
}
