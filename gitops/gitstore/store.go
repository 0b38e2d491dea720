// Package gitstore keeps each project's Git repository in PostgreSQL
// (tables git_repos, git_objects and git_refs, migrations/0002_git.sql):
// a go-git storage.Storer per project for the plumbing that reads and
// writes repositories (revlist, packfile encoding, commits and trees), an
// in-memory Overlay for objects not yet stored, and one transactional
// write, Repo.Update, that stores a push's objects and compare-and-swaps
// its refs together.
//
// It also has the read helpers the rest of the platform needs: Head, a
// commit's metadata and a short log, and TreeFiles, every file of a
// commit, which the push validator compiles pipelines from.
package gitstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Default limits, overridden by MaxObjectSize and MaxRepoSize.
const (
	DefaultMaxObjectSize int64 = 8 << 20
	DefaultMaxRepoSize   int64 = 256 << 20
	DefaultBranch              = "main"
)

// ErrRefNotFound is returned for a branch or ref that does not exist. It is
// go-git's own sentinel, so go-git code that tests for it keeps working.
var ErrRefNotFound = plumbing.ErrReferenceNotFound

// ErrObjectNotFound is returned for an object the repository does not have.
var ErrObjectNotFound = plumbing.ErrObjectNotFound

// Opt is an option of New.
type Opt func(*options)

type options struct {
	maxObject     int64
	maxRepo       int64
	defaultBranch string
}

// MaxObjectSize sets the largest object (uncompressed) a repository may
// hold, default 8 MiB.
func MaxObjectSize(n int64) Opt { return func(c *options) { c.maxObject = n } }

// MaxRepoSize sets the most bytes (uncompressed objects) one repository may
// hold, default 256 MiB.
func MaxRepoSize(n int64) Opt { return func(c *options) { c.maxRepo = n } }

// HeadBranch sets the branch HEAD points at in a repository that has no
// stored HEAD, default "main".
func HeadBranch(name string) Opt { return func(c *options) { c.defaultBranch = name } }

// Store is the Git repositories of all projects in one database.
type Store struct {
	pool *pgxpool.Pool
	cfg  options
}

// New returns a Store over pool. The migrations must have been applied.
func New(pool *pgxpool.Pool, opts ...Opt) (*Store, error) {
	cfg := options{maxObject: DefaultMaxObjectSize, maxRepo: DefaultMaxRepoSize, defaultBranch: DefaultBranch}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case pool == nil:
		return nil, errors.New("gitstore: nil pool")
	case cfg.maxObject <= 0:
		return nil, fmt.Errorf("gitstore: MaxObjectSize %d must be positive", cfg.maxObject)
	case cfg.maxRepo < cfg.maxObject:
		return nil, fmt.Errorf("gitstore: MaxRepoSize %d is below MaxObjectSize %d", cfg.maxRepo, cfg.maxObject)
	case !plumbing.NewBranchReferenceName(cfg.defaultBranch).IsBranch() || cfg.defaultBranch == "":
		return nil, fmt.Errorf("gitstore: bad HeadBranch %q", cfg.defaultBranch)
	}
	return &Store{pool: pool, cfg: cfg}, nil
}

// MaxObjectSize is the per-object limit the store enforces.
func (s *Store) MaxObjectSize() int64 { return s.cfg.maxObject }

// MaxRepoSize is the per-repository limit the store enforces.
func (s *Store) MaxRepoSize() int64 { return s.cfg.maxRepo }

// Repo returns the repository of project. go-git's storage interfaces take
// no context, so the Repo carries ctx for every query it makes: use one
// Repo per request and do not keep it past ctx. Objects read are cached in
// the Repo (they are immutable), so a request reads each once.
func (s *Store) Repo(ctx context.Context, project uuid.UUID) *Repo {
	return &Repo{ctx: ctx, store: s, project: project, cache: map[plumbing.Hash]*plumbing.MemoryObject{}}
}

// Head returns the commit branch (a short name such as "main") points at.
// A branch that does not exist gives plumbing.ZeroHash and an error that
// matches ErrRefNotFound.
func (s *Store) Head(ctx context.Context, project uuid.UUID, branch string) (plumbing.Hash, error) {
	ref, err := s.Repo(ctx, project).Reference(plumbing.NewBranchReferenceName(branch))
	if err != nil {
		if errors.Is(err, ErrRefNotFound) {
			return plumbing.ZeroHash, fmt.Errorf("gitstore: branch %q: %w", branch, ErrRefNotFound)
		}
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// Log returns up to n commits of branch, newest first (by commit time, as
// git log does). A branch that does not exist gives an error that matches
// ErrRefNotFound.
func (s *Store) Log(ctx context.Context, project uuid.UUID, branch string, n int) ([]Commit, error) {
	head, err := s.Head(ctx, project, branch)
	if err != nil {
		return nil, err
	}
	return Log(s.Repo(ctx, project), head, n)
}

// LimitError is returned when an object, a push or a repository is larger
// than its limit. It matches ErrTooLarge.
type LimitError struct {
	What  string // "object 1a2b3c4", "push", "repository"
	Limit string // the limit's name, e.g. "per-object limit"
	Size  int64  // the size found (a lower bound when the reader stopped early)
	Max   int64
}

// ErrTooLarge matches every *LimitError.
var ErrTooLarge = errors.New("too large")

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s is %s, over the %s of %s", e.What, FormatSize(e.Size), e.Limit, FormatSize(e.Max))
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// FormatSize renders a byte count the way the limits are documented: 8 MiB.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// ErrStaleRef matches every *StaleRefError.
var ErrStaleRef = errors.New("reference has changed concurrently")

// StaleRefError is returned by a compare-and-swap of a ref that no longer
// holds the expected old value: another push moved it first.
type StaleRefError struct {
	Name plumbing.ReferenceName
}

func (e *StaleRefError) Error() string {
	return fmt.Sprintf("gitstore: %s was updated concurrently", e.Name)
}

// Is makes errors.Is(err, ErrStaleRef) true, and errors.Is with go-git's
// storage.ErrReferenceHasChanged, which go-git callers test for.
func (e *StaleRefError) Is(target error) bool {
	return target == ErrStaleRef || target == storage.ErrReferenceHasChanged
}
