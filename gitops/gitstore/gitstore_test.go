package gitstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/gitstore"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T, opts ...gitstore.Opt) (*gitstore.Store, uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	org, project := uuid.New(), uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO organizations (id, name) VALUES ($1, 'acme')`, org); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO projects (id, org_id, name) VALUES ($1, $2, 'demo')`, project, org); err != nil {
		t.Fatal(err)
	}
	s, err := gitstore.New(pool, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, project
}

var sig = object.Signature{Name: "A", Email: "a@example.com", When: time.Unix(1700000000, 0).UTC()}

// commit writes a commit of files over parent into an overlay of repo.
func commit(t *testing.T, o *gitstore.Overlay, files map[string][]byte, parents ...plumbing.Hash) plumbing.Hash {
	t.Helper()
	tree, err := gitstore.WriteTree(o, files)
	if err != nil {
		t.Fatal(err)
	}
	h, err := gitstore.WriteCommit(o, gitstore.Commit{Tree: tree, Parents: parents, Author: sig, Message: "m\n"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var mainRef = plumbing.NewBranchReferenceName("main")

// Ref updates are compare-and-swap: a writer whose expected old value is
// out of date gets ErrStaleRef and stores nothing, objects included.
func TestUpdateCompareAndSwap(t *testing.T) {
	s, project := newStore(t)
	ctx := context.Background()
	repo := s.Repo(ctx, project)

	o := gitstore.NewOverlay(repo, s.MaxObjectSize())
	c1 := commit(t, o, map[string][]byte{"a.txt": []byte("1")})
	if err := repo.Update(ctx, o.Added(), []gitstore.RefUpdate{{Name: mainRef, New: c1}}, nil); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Head(ctx, project, "main"); err != nil || h != c1 {
		t.Fatalf("Head = %s, %v", h, err)
	}

	// Creating main again (Old zero) is stale: it exists.
	o = gitstore.NewOverlay(repo, s.MaxObjectSize())
	c2 := commit(t, o, map[string][]byte{"a.txt": []byte("2")}, c1)
	err := repo.Update(ctx, o.Added(), []gitstore.RefUpdate{{Name: mainRef, New: c2}}, nil)
	if !errors.Is(err, gitstore.ErrStaleRef) {
		t.Fatalf("create of an existing ref: %v", err)
	}
	if repo.HasEncodedObject(c2) == nil {
		t.Fatal("objects of a stale update were stored")
	}

	// An error from the caller's function rolls everything back.
	boom := errors.New("boom")
	err = repo.Update(ctx, o.Added(), []gitstore.RefUpdate{{Name: mainRef, Old: c1, New: c2}},
		func(context.Context, pgx.Tx) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if h, _ := s.Head(ctx, project, "main"); h != c1 || repo.HasEncodedObject(c2) == nil {
		t.Fatal("a failed Update moved the ref or stored objects")
	}

	if err := repo.Update(ctx, o.Added(), []gitstore.RefUpdate{{Name: mainRef, Old: c1, New: c2}}, nil); err != nil {
		t.Fatal(err)
	}
	// Deleting with a stale old value is refused too.
	stale := &gitstore.StaleRefError{}
	if err := repo.Update(ctx, nil, []gitstore.RefUpdate{{Name: mainRef, Old: c1}}, nil); !errors.As(err, &stale) || stale.Name != mainRef {
		t.Fatalf("stale delete: %v", err)
	}

	log, err := s.Log(ctx, project, "main", 5)
	if err != nil || len(log) != 2 || log[0].Hash != c2 || log[1].Hash != c1 {
		t.Fatalf("Log = %+v, %v", log, err)
	}
	if _, err := s.Head(ctx, project, "nope"); !errors.Is(err, gitstore.ErrRefNotFound) {
		t.Fatalf("Head of a missing branch: %v", err)
	}
}

// go-git's own plumbing works over a Repo: open it as a repository, walk
// the log and list the objects of a commit.
func TestGoGitPlumbing(t *testing.T) {
	s, project := newStore(t)
	ctx := context.Background()
	repo := s.Repo(ctx, project)
	o := gitstore.NewOverlay(repo, 0)
	c1 := commit(t, o, map[string][]byte{"pipelines/a.yaml": []byte("a"), "README.md": []byte("r")})
	c2 := commit(t, o, map[string][]byte{"pipelines/a.yaml": []byte("b"), "README.md": []byte("r")}, c1)
	if err := repo.Update(ctx, o.Added(), []gitstore.RefUpdate{{Name: mainRef, New: c2}}, nil); err != nil {
		t.Fatal(err)
	}

	r, err := git.Open(s.Repo(ctx, project), nil)
	if err != nil {
		t.Fatal(err)
	}
	headRef, err := r.Head()
	if err != nil || headRef.Hash() != c2 {
		t.Fatalf("HEAD = %v, %v", headRef, err)
	}
	iter, err := r.Log(&git.LogOptions{From: c2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = iter.ForEach(func(*object.Commit) error { n++; return nil })
	if n != 2 {
		t.Fatalf("log has %d commits", n)
	}
	// c2 adds one commit, one root tree, one subtree and one blob over c1.
	objs, err := revlist.Objects(repo, []plumbing.Hash{c2}, []plumbing.Hash{c1})
	if err != nil || len(objs) != 4 {
		t.Fatalf("revlist = %v, %v", objs, err)
	}
}

// The size limits refuse an object or a repository over them, naming the
// limit, and store nothing.
func TestLimits(t *testing.T) {
	s, project := newStore(t, gitstore.MaxObjectSize(1<<10), gitstore.MaxRepoSize(4<<10))
	ctx := context.Background()
	repo := s.Repo(ctx, project)

	o := gitstore.NewOverlay(repo, s.MaxObjectSize())
	if _, err := gitstore.WriteTree(o, map[string][]byte{"big": make([]byte, 2<<10)}); !errors.Is(err, gitstore.ErrTooLarge) ||
		!strings.Contains(err.Error(), "over the per-object limit of 1 KiB") {
		t.Fatalf("oversized object: %v", err)
	}

	files := map[string][]byte{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		files[name] = []byte(strings.Repeat(name, 1000))
	}
	o = gitstore.NewOverlay(repo, s.MaxObjectSize())
	c := commit(t, o, files)
	err := repo.Update(ctx, o.Added(), []gitstore.RefUpdate{{Name: mainRef, New: c}}, nil)
	if !errors.Is(err, gitstore.ErrTooLarge) || !strings.Contains(err.Error(), "over the repository limit of 4 KiB") {
		t.Fatalf("oversized repository: %v", err)
	}
	if n, err := repo.Size(ctx); err != nil || n != 0 {
		t.Fatalf("size after a refused update = %d, %v", n, err)
	}
}

// TreeFiles returns regular files by path within its limits.
func TestTreeFiles(t *testing.T) {
	s, project := newStore(t)
	o := gitstore.NewOverlay(s.Repo(context.Background(), project), 0)
	c := commit(t, o, map[string][]byte{"a/b/c.yaml": []byte("abc"), "d.txt": []byte("d"), "a/e": []byte("")})

	files, err := gitstore.TreeFiles(o, c, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || string(files["a/b/c.yaml"]) != "abc" || string(files["d.txt"]) != "d" {
		t.Fatalf("TreeFiles = %q", files)
	}
	if _, err := gitstore.TreeFiles(o, c, 2, 100); !errors.Is(err, gitstore.ErrTooLarge) || !strings.Contains(err.Error(), "more than 2 files") {
		t.Fatalf("too many files: %v", err)
	}
	if _, err := gitstore.TreeFiles(o, c, 10, 3); !errors.Is(err, gitstore.ErrTooLarge) || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("too many bytes: %v", err)
	}
}

func TestWriteTreeRefusesBadPaths(t *testing.T) {
	o := gitstore.NewOverlay(gitstore.NewOverlay(nil, 0), 0)
	for _, p := range []string{"", "/abs", "a/../b", "a//b", ".git/config", "a/.GIT/x", "dir/", `a\b`} {
		var pe *gitstore.PathError
		if _, err := gitstore.WriteTree(o, map[string][]byte{p: nil}); !errors.As(err, &pe) {
			t.Errorf("path %q: %v", p, err)
		}
	}
	if _, err := gitstore.WriteTree(o, map[string][]byte{"a": nil, "a/b": nil}); err == nil {
		t.Error("a file and a directory of the same name were accepted")
	}
}
