// Package push decides what a push to a project's repository does
// (DESIGN.md §5): a push to the deploy branch is validated (every pipeline
// compiles, keeps or explicitly resets its state, and passes its tests),
// and rejected with the messages the pusher needs, or recorded as
// revisions with a rollout per fleet, in the transaction that moves the
// branch. Pushes to other branches are stored, not deployed. The same path
// serves server-side commits: a new project's first commit, the revert
// commits of rollbacks and, later, the IDE.
package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/gitserver"
	"github.com/sluicehq/sluice/gitops/gitstore"
	"github.com/sluicehq/sluice/gitops/validate"
)

// Limits on the tree one push may ask us to validate.
const (
	MaxFiles = 2000
	MaxBytes = 64 << 20
)

// Hook is the git server's gitserver.Hook for Sluice repositories.
type Hook struct {
	store *deploy.Store
	reg   *catalog.Registry

	mu sync.Mutex
	// checked holds each push's validation between Check and Accepted.
	checked map[*gitserver.Push]checked
}

type checked struct {
	at     time.Time
	result validate.Result
	commit gitstore.Commit
	update gitserver.RefUpdate
}

// New returns the hook.
func New(store *deploy.Store, reg *catalog.Registry) *Hook {
	return &Hook{store: store, reg: reg, checked: map[*gitserver.Push]checked{}}
}

var _ gitserver.Hook = (*Hook)(nil)

// deployUpdate is the push's update of the deploy branch, if any.
func deployUpdate(p *gitserver.Push) (gitserver.RefUpdate, bool) {
	branch := p.Access.DeployBranch
	if branch == "" {
		branch = gitstore.DefaultBranch
	}
	want := plumbing.NewBranchReferenceName(branch)
	for _, u := range p.Updates {
		if u.Name == want && !u.New.IsZero() {
			return u, true
		}
	}
	return gitserver.RefUpdate{}, false
}

// Check validates the deploy branch's new commit.
func (h *Hook) Check(ctx context.Context, p *gitserver.Push) (*gitserver.Rejection, error) {
	h.forgetOld()
	u, ok := deployUpdate(p)
	if !ok {
		return nil, nil
	}
	c, err := gitstore.ReadCommit(p.Objects, u.New)
	if err != nil {
		return nil, err
	}
	files, err := gitstore.TreeFiles(p.Objects, u.New, MaxFiles, MaxBytes)
	if err != nil {
		return &gitserver.Rejection{Reason: "too large to validate", Lines: []string{err.Error()}}, nil
	}
	previous, err := h.store.Previous(ctx, p.Access.ProjectID)
	if err != nil {
		return nil, err
	}
	progress(p.Progress, "sluice: validating %s (%s)", short(u.New.String()), firstLine(c.Message))
	res, err := validate.Check(ctx, h.reg, files, previous)
	if err != nil {
		return nil, err
	}
	if res.Failed {
		lines := append([]string{fmt.Sprintf("sluice: %s was not deployed: fix these and push again", short(u.New.String()))}, res.Lines...)
		return &gitserver.Rejection{Reason: "pipelines failed validation", Lines: lines}, nil
	}
	for _, l := range res.Lines {
		progress(p.Progress, "%s", l)
	}
	h.mu.Lock()
	h.checked[p] = checked{at: time.Now(), result: res, commit: c, update: u}
	h.mu.Unlock()
	return nil, nil
}

// Accepted records the validated commit in the transaction that moves the
// branch, and tells the pusher what it started.
func (h *Hook) Accepted(ctx context.Context, tx pgx.Tx, p *gitserver.Push) error {
	h.mu.Lock()
	ck, ok := h.checked[p]
	delete(h.checked, p)
	h.mu.Unlock()
	if !ok {
		return nil // not the deploy branch
	}
	var by *uuid.UUID
	if id, ok := p.Access.Principal.(uuid.UUID); ok && id != uuid.Nil {
		by = &id
	}
	parent := ""
	if !ck.update.Old.IsZero() {
		parent = ck.update.Old.String()
	}
	sum, err := h.store.RecordCommit(ctx, tx, p.Access.ProjectID, deploy.Commit{
		SHA: ck.update.New.String(), Parent: parent, Message: ck.commit.Message, By: by,
		Author: fmt.Sprintf("%s <%s>", ck.commit.Author.Name, ck.commit.Author.Email),
	}, ck.result.Pipelines)
	if err != nil {
		return err
	}
	for _, r := range sum.StateResets {
		progress(p.Progress, "sluice: %s", r)
	}
	switch {
	case len(sum.Changed) == 0 && len(sum.Removed) == 0:
		progress(p.Progress, "sluice: no pipeline changed; nothing to deploy")
	default:
		if len(sum.Changed) > 0 {
			progress(p.Progress, "sluice: new revisions of %s", strings.Join(sum.Changed, ", "))
		}
		if len(sum.Removed) > 0 {
			progress(p.Progress, "sluice: removed %s", strings.Join(sum.Removed, ", "))
		}
		if len(sum.Rollouts) == 0 {
			progress(p.Progress, "sluice: the project has no fleet yet, so nothing runs them")
		}
		for _, r := range sum.Rollouts {
			progress(p.Progress, "sluice: rollout %s started on fleet %s (sluice rollout watch %s)", r.ID, r.Fleet, r.ID)
		}
	}
	return nil
}

// forgetOld drops validations whose push never reached Accepted (it was
// rejected for another ref, or its transaction failed).
func (h *Hook) forgetOld() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, c := range h.checked {
		if time.Since(c.at) > 10*time.Minute {
			delete(h.checked, p)
		}
	}
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// Reverter writes revert commits through the git server, for rollbacks.
type Reverter struct {
	Git    *gitserver.Server
	Repos  *gitstore.Store
	Access func(ctx context.Context, projectID uuid.UUID) (gitserver.Access, error)
}

// Revert writes, on the deploy branch, a commit whose tree is to's tree,
// if the branch still points at bad.
func (rv *Reverter) Revert(ctx context.Context, projectID uuid.UUID, bad, to, reason string) (string, error) {
	a, err := rv.Access(ctx, projectID)
	if err != nil {
		return "", err
	}
	head, err := rv.Repos.Head(ctx, projectID, a.DeployBranch)
	if errors.Is(err, gitstore.ErrRefNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if head.String() != bad {
		return "", nil
	}
	repo := rv.Repos.Repo(ctx, projectID)
	target, err := gitstore.ReadCommit(repo, plumbing.NewHash(to))
	if err != nil {
		return "", err
	}
	badCommit, err := gitstore.ReadCommit(repo, head)
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("Revert %q\n\nRolled back: %s\n\nThis reverts commit %s.\n", firstLine(badCommit.Message), reason, bad)
	now := time.Now()
	sha, rej, err := rv.Git.Commit(ctx, a, gitserver.CommitRequest{
		Branch: a.DeployBranch, Parent: head, Tree: target.Tree, Message: msg,
		Author: object.Signature{Name: "Sluice", Email: "rollouts@sluice.invalid", When: now},
	})
	if err != nil {
		return "", err
	}
	if rej != nil {
		return "", fmt.Errorf("the revert commit was refused: %s: %s", rej.Reason, strings.Join(rej.Lines, "; "))
	}
	return sha.String(), nil
}
