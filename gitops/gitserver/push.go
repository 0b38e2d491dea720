package gitserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/gitstore"
)

// Reasons shown after a refused ref, in git's own words where git has them.
const (
	reasonNonFastForward = "non-fast-forward"
	reasonAtomic         = "atomic push failure"
	reasonDeleteCurrent  = "deletion of the current branch prohibited"
	reasonTagExists      = "already exists"
	reasonOutside        = "only refs/heads/ and refs/tags/ may be pushed"
	reasonBadName        = "invalid ref name"
	reasonMissing        = "missing necessary objects"
	reasonNotCommit      = "branches must point at commits"
	reasonUnpack         = "unpacker error"
	reasonTooLarge       = "repository size limit"
	reasonRejected       = "rejected by the push check"
	reasonInternal       = "internal server error"
)

// refusal is why a push was not stored.
type refusal struct {
	reasons   map[plumbing.ReferenceName]string // per ref; refs missing get reasonAtomic
	lines     []string                          // shown to the pusher
	rejection *Rejection                        // from Hook.Check
	stale     plumbing.ReferenceName            // a ref another push moved first
}

func (f *refusal) reason(name plumbing.ReferenceName) string {
	if r, ok := f.reasons[name]; ok {
		return r
	}
	if f.rejection != nil {
		if f.rejection.Reason != "" {
			return f.rejection.Reason
		}
		return reasonRejected
	}
	return reasonAtomic
}

func allRefs(p *Push, reason string) map[plumbing.ReferenceName]string {
	m := make(map[plumbing.ReferenceName]string, len(p.Updates))
	for _, u := range p.Updates {
		m[u.Name] = reason
	}
	return m
}

// apply runs a push whose objects are in o through the checks, the hook
// and the transaction. A refused push returns a refusal; err is for
// server errors only. Every ref moves or none does.
func (s *Server) apply(ctx context.Context, repo *gitstore.Repo, o *gitstore.Overlay, p *Push) (*refusal, error) {
	if f, err := s.validate(repo, o, p); f != nil || err != nil {
		return f, err
	}
	var tips []plumbing.Hash
	for _, u := range p.Updates {
		if !u.New.IsZero() {
			tips = append(tips, u.New)
		}
	}
	if err := checkConnected(o, tips); err != nil {
		return &refusal{reasons: allRefs(p, reasonMissing), lines: []string{"error: " + err.Error()}}, nil
	}
	rej, err := s.hook.Check(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("push check: %w", err)
	}
	if rej != nil {
		return &refusal{rejection: rej, lines: rej.Lines}, nil
	}
	err = repo.Update(ctx, o.Added(), p.Updates, func(ctx context.Context, tx pgx.Tx) error {
		return s.hook.Accepted(ctx, tx, p)
	})
	var stale *gitstore.StaleRefError
	var limit *gitstore.LimitError
	switch {
	case errors.As(err, &stale):
		return &refusal{
			reasons: map[plumbing.ReferenceName]string{stale.Name: reasonNonFastForward},
			lines:   []string{fmt.Sprintf("error: %s was updated by another push meanwhile; fetch, then push again", stale.Name)},
			stale:   stale.Name,
		}, nil
	case errors.As(err, &limit):
		return &refusal{reasons: allRefs(p, reasonTooLarge), lines: []string{"error: " + limit.Error()}}, nil
	case err != nil:
		return nil, err
	}
	return nil, nil
}

// validate refuses updates git's receive-pack would refuse by default,
// and any outside branches and tags.
func (s *Server) validate(repo *gitstore.Repo, o *gitstore.Overlay, p *Push) (*refusal, error) {
	reasons := map[plumbing.ReferenceName]string{}
	var lines []string
	var stale plumbing.ReferenceName
	seen := map[plumbing.ReferenceName]bool{}
	for _, u := range p.Updates {
		name := u.Name
		if seen[name] || name.Validate() != nil {
			reasons[name] = reasonBadName
			continue
		}
		seen[name] = true
		if !name.IsBranch() && !name.IsTag() {
			reasons[name] = reasonOutside
			continue
		}
		current := plumbing.ZeroHash
		ref, err := repo.Reference(name)
		switch {
		case errors.Is(err, gitstore.ErrRefNotFound):
		case err != nil:
			return nil, err
		default:
			current = ref.Hash()
		}
		if current != u.Old {
			// The client's view of the ref is out of date: another push
			// moved it since the client listed the refs.
			if name.IsTag() && u.Old.IsZero() {
				reasons[name] = reasonTagExists
			} else {
				reasons[name] = reasonNonFastForward
				stale = name
				lines = append(lines, fmt.Sprintf("error: %s was updated by another push meanwhile; fetch, then push again", name))
			}
			continue
		}
		if u.New.IsZero() {
			if name == p.Access.deployRef() {
				reasons[name] = reasonDeleteCurrent
			}
			continue
		}
		if name.IsTag() && !u.Old.IsZero() {
			reasons[name] = reasonTagExists
			continue
		}
		obj, err := o.EncodedObject(plumbing.AnyObject, u.New)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			reasons[name] = reasonMissing
			continue
		}
		if err != nil {
			return nil, err
		}
		if !name.IsBranch() {
			continue
		}
		if obj.Type() != plumbing.CommitObject {
			reasons[name] = reasonNotCommit
			continue
		}
		if !u.Old.IsZero() {
			ff, err := isAncestor(o, u.Old, u.New)
			if err != nil {
				return nil, err
			}
			if !ff {
				reasons[name] = reasonNonFastForward
				lines = append(lines, fmt.Sprintf("error: %s: the pushed commit does not contain the current one (force pushes are refused); pull, then push again", name.Short()))
			}
		}
	}
	if len(reasons) == 0 {
		return nil, nil
	}
	return &refusal{reasons: reasons, lines: lines, stale: stale}, nil
}

func isAncestor(o *gitstore.Overlay, old, new plumbing.Hash) (bool, error) {
	if old == new {
		return true, nil
	}
	oc, err := object.GetCommit(o, old)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	nc, err := object.GetCommit(o, new)
	if err != nil {
		return false, err
	}
	return oc.IsAncestor(nc)
}

// checkConnected makes sure every object reachable from tips is either
// pushed or stored, walking only the pushed ones: stored objects were
// checked the same way when they were pushed.
func checkConnected(o *gitstore.Overlay, tips []plumbing.Hash) error {
	seen := map[plumbing.Hash]bool{}
	stack := append([]plumbing.Hash(nil), tips...)
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[h] {
			continue
		}
		seen[h] = true
		if !o.IsAdded(h) {
			if err := o.HasEncodedObject(h); err != nil {
				return fmt.Errorf("object %s is neither pushed nor stored: %w", h, err)
			}
			continue
		}
		obj, err := o.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return err
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			c, err := object.DecodeCommit(o, obj)
			if err != nil {
				return fmt.Errorf("commit %s: %w", h, err)
			}
			stack = append(stack, c.TreeHash)
			stack = append(stack, c.ParentHashes...)
		case plumbing.TreeObject:
			t, err := object.DecodeTree(o, obj)
			if err != nil {
				return fmt.Errorf("tree %s: %w", h, err)
			}
			for _, e := range t.Entries {
				if e.Mode != filemode.Submodule {
					stack = append(stack, e.Hash)
				}
			}
		case plumbing.TagObject:
			t, err := object.DecodeTag(o, obj)
			if err != nil {
				return fmt.Errorf("tag %s: %w", h, err)
			}
			stack = append(stack, t.Target)
		}
	}
	return nil
}

// CommitRequest is a commit made on the server (a new project's first
// files, a rollback's revert, the IDE).
type CommitRequest struct {
	Branch string // short name, e.g. "main"
	// Parent is the commit the branch must point at now, plumbing.ZeroHash
	// for a new branch. If the branch moved, Commit fails with an error
	// matching gitstore.ErrStaleRef.
	Parent plumbing.Hash
	// Files is the whole tree of the commit by slash path; or set Tree to
	// an existing tree instead (a revert reuses an old commit's tree).
	Files   map[string][]byte
	Tree    plumbing.Hash
	Author  object.Signature // When defaults to now; also the committer
	Message string
}

// Commit writes a commit on c.Branch through the same checks, Hook.Check
// and Hook.Accepted as a push. A push check's refusal comes back as a
// Rejection (with a zero hash and nil error); a branch that moved since
// c.Parent gives an error matching gitstore.ErrStaleRef.
func (s *Server) Commit(ctx context.Context, a Access, c CommitRequest) (plumbing.Hash, *Rejection, error) {
	switch {
	case c.Branch == "":
		return plumbing.ZeroHash, nil, errors.New("gitserver: commit without a branch")
	case c.Files != nil && !c.Tree.IsZero():
		return plumbing.ZeroHash, nil, errors.New("gitserver: commit with both Files and Tree")
	case c.Author.Name == "" || c.Author.Email == "":
		return plumbing.ZeroHash, nil, errors.New("gitserver: commit without an author name and email")
	}
	if c.Author.When.IsZero() {
		c.Author.When = time.Now()
	}
	repo := s.store.Repo(ctx, a.ProjectID)
	o := gitstore.NewOverlay(repo, s.store.MaxObjectSize())
	tree := c.Tree
	if tree.IsZero() {
		var err error
		if tree, err = gitstore.WriteTree(o, c.Files); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	} else if _, err := o.EncodedObject(plumbing.TreeObject, tree); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitserver: tree %s: %w", tree, err)
	}
	commit := gitstore.Commit{Tree: tree, Author: c.Author, Committer: c.Author, Message: c.Message}
	if !c.Parent.IsZero() {
		commit.Parents = []plumbing.Hash{c.Parent}
	}
	h, err := gitstore.WriteCommit(o, commit)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	name := plumbing.NewBranchReferenceName(c.Branch)
	p := &Push{
		Access:   a,
		Updates:  []RefUpdate{{Name: name, Old: c.Parent, New: h}},
		Objects:  o,
		Progress: io.Discard,
	}
	f, err := s.apply(ctx, repo, o, p)
	switch {
	case err != nil:
		return plumbing.ZeroHash, nil, fmt.Errorf("gitserver: commit on %s: %w", c.Branch, err)
	case f == nil:
		return h, nil, nil
	case f.stale != "":
		return plumbing.ZeroHash, nil, fmt.Errorf("gitserver: commit on %s: %w", c.Branch, &gitstore.StaleRefError{Name: f.stale})
	case f.rejection != nil:
		return plumbing.ZeroHash, f.rejection, nil
	}
	return plumbing.ZeroHash, &Rejection{Reason: f.reason(name), Lines: f.lines}, nil
}
