package gitserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/gitserver"
	"github.com/sluicehq/sluice/gitops/gitserver/gittest"
	"github.com/sluicehq/sluice/gitops/gitstore"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func head(t *testing.T, s *gittest.Server) plumbing.Hash {
	t.Helper()
	h, err := s.Store.Head(context.Background(), s.Project, "main")
	if err != nil && !errors.Is(err, gitstore.ErrRefNotFound) {
		t.Fatal(err)
	}
	return h
}

// The whole life of a repository through the real git CLI: an empty clone,
// a first push, a fresh clone that git fsck finds clean, and a fetch of a
// later commit, which needs the negotiation of common commits.
func TestCloneEmptyPushCloneFetch(t *testing.T) {
	s := gittest.NewServer(t, gittest.Options{})
	g := gittest.NewGit(t)

	dir := g.Clone(s.URL(gittest.WriteToken))
	if h := head(t, s); !h.IsZero() {
		t.Fatalf("empty repository has main at %s", h)
	}
	first := g.CommitFiles(dir, "first", map[string]string{
		"pipelines/a.yaml":     "name: a\n",
		"zones/depots.geojson": `{"type":"FeatureCollection","features":[]}`,
		"README.md":            "hello\n",
	})
	g.Must(dir, "push", "-q", "origin", "main")
	if got := head(t, s).String(); got != first {
		t.Fatalf("main = %s after push, want %s", got, first)
	}

	dir2 := g.Clone(s.URL(gittest.ReadToken))
	g.Must(dir2, "fsck", "--full", "--strict")
	if got := strings.TrimSpace(g.Must(dir2, "rev-parse", "HEAD")); got != first {
		t.Fatalf("clone HEAD = %s, want %s", got, first)
	}
	if b, err := os.ReadFile(filepath.Join(dir2, "pipelines", "a.yaml")); err != nil || string(b) != "name: a\n" {
		t.Fatalf("cloned file = %q, %v", b, err)
	}

	second := g.CommitFiles(dir, "second", map[string]string{"pipelines/b.yaml": "name: b\n"})
	g.Must(dir, "push", "-q", "origin", "main")
	// Local commits the server lacks make git negotiate over several
	// stateless rounds (haves the server NAKs) before it finds the
	// common commit.
	g.Must(dir2, "checkout", "-q", "-b", "local")
	for i := range 40 {
		g.CommitFiles(dir2, fmt.Sprintf("local %d", i), map[string]string{"local.txt": fmt.Sprint(i)})
	}
	g.Must(dir2, "checkout", "-q", "main")
	g.Must(dir2, "fetch", "-q", "origin")
	if got := strings.TrimSpace(g.Must(dir2, "rev-parse", "origin/main")); got != second {
		t.Fatalf("fetched origin/main = %s, want %s", got, second)
	}
	g.Must(dir2, "merge", "-q", "--ff-only", "origin/main")
	g.Must(dir2, "fsck", "--full", "--strict")

	// The helpers the platform uses read what git pushed.
	ctx := context.Background()
	files, err := gitstore.TreeFiles(s.Store.Repo(ctx, s.Project), plumbing.NewHash(second), 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || string(files["pipelines/b.yaml"]) != "name: b\n" {
		t.Fatalf("TreeFiles = %v", files)
	}
	log, err := s.Store.Log(ctx, s.Project, "main", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Message != "second\n" || log[0].Parents[0].String() != first || log[1].Author.Email != "author@example.com" {
		t.Fatalf("Log = %+v", log)
	}

	// A tag and a second branch go through too; a clone gets both.
	g.Must(dir, "tag", "-a", "v1", "-m", "release 1")
	g.Must(dir, "push", "-q", "origin", "v1", "main:feature")
	dir3 := g.Clone(s.URL(gittest.ReadToken))
	if out := g.Must(dir3, "tag", "-l"); strings.TrimSpace(out) != "v1" {
		t.Fatalf("tags in clone: %q", out)
	}
	g.Must(dir3, "fsck", "--full", "--strict")
	// Deleting a branch other than the deploy branch is allowed.
	g.Must(dir, "push", "-q", "origin", ":feature")
}

// rejectHook refuses every push with lines for the pusher.
type rejectHook struct{ lines []string }

func (h rejectHook) Check(ctx context.Context, p *gitserver.Push) (*gitserver.Rejection, error) {
	fmt.Fprintln(p.Progress, "checking 1 pipeline")
	return &gitserver.Rejection{Reason: "pipelines failed validation", Lines: h.lines}, nil
}

func (rejectHook) Accepted(context.Context, pgx.Tx, *gitserver.Push) error {
	return errors.New("not reached")
}

// A hook's rejection reaches the pusher's terminal line for line, as the
// compiler's file:line:col errors must, and the ref does not move.
func TestHookRejectionShownAndRefNotMoved(t *testing.T) {
	lines := []string{
		"pipelines/a.yaml:3:5: unknown operator \"filtr\" (did you mean \"filter\"?)",
		"pipelines/b.yaml:1:1: missing spec.source",
	}
	s := gittest.NewServer(t, gittest.Options{Hook: rejectHook{lines: lines}})
	g := gittest.NewGit(t)
	dir := g.Clone(s.URL(gittest.WriteToken))
	g.CommitFiles(dir, "bad", map[string]string{"pipelines/a.yaml": "x\n"})
	out, err := g.Run(dir, "push", "origin", "main")
	if err == nil {
		t.Fatalf("push succeeded:\n%s", out)
	}
	t.Logf("git push:\n%s", out)
	for _, want := range []string{
		"remote: checking 1 pipeline",
		"remote: " + lines[0],
		"remote: " + lines[1],
		"! [remote rejected] main -> main (pipelines failed validation)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if h := head(t, s); !h.IsZero() {
		t.Fatalf("main moved to %s", h)
	}
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM git_objects`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d objects stored after a rejected push (%v)", n, err)
	}
}

// barrierHook holds each Check until n pushes are checking, so that
// concurrent pushes reach the ref compare-and-swap together.
type barrierHook struct {
	mu       sync.Mutex
	n        int
	arrived  int
	released chan struct{}
	accepted []plumbing.Hash
}

func (h *barrierHook) Check(ctx context.Context, p *gitserver.Push) (*gitserver.Rejection, error) {
	h.mu.Lock()
	h.arrived++
	released := h.released
	if h.arrived == h.n {
		close(released)
	}
	h.mu.Unlock()
	select {
	case <-released:
	case <-time.After(20 * time.Second):
		return nil, errors.New("the other push never arrived")
	}
	return nil, nil
}

func (h *barrierHook) Accepted(ctx context.Context, tx pgx.Tx, p *gitserver.Push) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accepted = append(h.accepted, p.Updates[0].New)
	return nil
}

// Two clones push on the same commit at once: both pass the checks, one
// wins the compare-and-swap, the other is rejected as non-fast-forward and
// nothing of it is stored. After a pull it pushes fine, and no commit is lost.
func TestConcurrentPushesOneWins(t *testing.T) {
	hook := &barrierHook{n: 2, released: make(chan struct{})}
	s := gittest.NewServer(t, gittest.Options{})
	g := gittest.NewGit(t)
	url := s.URL(gittest.WriteToken)
	seed := g.Clone(url)
	g.CommitFiles(seed, "base", map[string]string{"README.md": "base\n"})
	g.Must(seed, "push", "-q", "origin", "main")

	// A second server over the same store, with the barrier hook.
	srv, err := gitserver.New(s.Store, func(ctx context.Context, r *http.Request, org, project string, write bool) (gitserver.Access, error) {
		return s.Access, nil
	}, hook)
	if err != nil {
		t.Fatal(err)
	}
	mux := chi.NewRouter()
	mux.Mount("/git", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	url = hs.URL + "/git/acme/demo.git"

	a, b := g.Clone(url), g.Clone(url)
	ca := g.CommitFiles(a, "from a", map[string]string{"a.txt": "a\n"})
	cb := g.CommitFiles(b, "from b", map[string]string{"b.txt": "b\n"})
	outs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, dir := range []string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = g.Run(dir, "push", "origin", "main")
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("want exactly one push to win:\nA (%v): %s\nB (%v): %s", errs[0], outs[0], errs[1], outs[1])
	}
	winner, loser, loserDir, loserOut := ca, cb, b, outs[1]
	if errs[0] != nil {
		winner, loser, loserDir, loserOut = cb, ca, a, outs[0]
	}
	t.Logf("the losing git push:\n%s", loserOut)
	if !strings.Contains(loserOut, "[remote rejected] main -> main (non-fast-forward)") {
		t.Errorf("loser's push output:\n%s", loserOut)
	}
	if got := head(t, s).String(); got != winner {
		t.Fatalf("main = %s, want the winner %s", got, winner)
	}
	hook.mu.Lock()
	accepted := hook.accepted
	hook.mu.Unlock()
	if len(accepted) != 1 || accepted[0].String() != winner {
		t.Fatalf("Accepted ran for %v, want only %s", accepted, winner)
	}
	if err := s.Store.Repo(context.Background(), s.Project).HasEncodedObject(plumbing.NewHash(loser)); err == nil {
		t.Fatalf("the rejected commit %s was stored", loser)
	}

	// The loser pulls (a merge) and pushes; both commits are on main.
	hook.mu.Lock()
	hook.released = make(chan struct{})
	hook.n, hook.arrived = 1, 0
	hook.mu.Unlock()
	g.Must(loserDir, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
	g.Must(loserDir, "push", "-q", "origin", "main")
	log, err := s.Store.Log(context.Background(), s.Project, "main", 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range log {
		seen[c.Hash.String()] = true
	}
	if !seen[winner] || !seen[loser] {
		t.Fatalf("log lost a commit: %v", log)
	}
}

// A force push that drops a commit, and deleting the deploy branch, are
// refused by the server, in git's words.
func TestForcePushAndDeployBranchDeletionRefused(t *testing.T) {
	s := gittest.NewServer(t, gittest.Options{})
	g := gittest.NewGit(t)
	dir := g.Clone(s.URL(gittest.WriteToken))
	g.CommitFiles(dir, "one", map[string]string{"a": "1\n"})
	pushed := g.CommitFiles(dir, "two", map[string]string{"a": "2\n"})
	g.Must(dir, "push", "-q", "origin", "main")

	g.Must(dir, "reset", "-q", "--hard", "HEAD~1")
	g.CommitFiles(dir, "rewritten", map[string]string{"a": "3\n"})
	out, err := g.Run(dir, "push", "--force", "origin", "main")
	if err == nil || !strings.Contains(out, "! [remote rejected] main -> main (non-fast-forward)") {
		t.Fatalf("force push: err %v\n%s", err, out)
	}
	if got := head(t, s).String(); got != pushed {
		t.Fatalf("main = %s after a refused force push, want %s", got, pushed)
	}

	out, err = g.Run(dir, "push", "origin", ":main")
	if err == nil || !strings.Contains(out, "deletion of the current branch prohibited") {
		t.Fatalf("delete main: err %v\n%s", err, out)
	}
	out, err = g.Run(dir, "push", "origin", "HEAD:refs/notes/x")
	if err == nil || !strings.Contains(out, "only refs/heads/ and refs/tags/ may be pushed") {
		t.Fatalf("push outside heads and tags: err %v\n%s", err, out)
	}
}

// Without credentials git is challenged (401) and, with prompts off,
// fails; a read-only token can clone but not push (403).
func TestUnauthorizedAndReadOnly(t *testing.T) {
	s := gittest.NewServer(t, gittest.Options{})
	g := gittest.NewGit(t)
	out, err := g.Run(t.TempDir(), "clone", s.URL(""), "x")
	if err == nil || !(strings.Contains(out, "Authentication failed") || strings.Contains(out, "could not read Username")) {
		t.Fatalf("clone without credentials: err %v\n%s", err, out)
	}
	out, err = g.Run(t.TempDir(), "clone", s.URL("wrong"), "x")
	if err == nil || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("clone with a bad token: err %v\n%s", err, out)
	}
	dir := g.Clone(s.URL(gittest.ReadToken))
	g.CommitFiles(dir, "nope", map[string]string{"a": "1\n"})
	out, err = g.Run(dir, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("read-only push: err %v\n%s", err, out)
	}
	if h := head(t, s); !h.IsZero() {
		t.Fatalf("main moved to %s", h)
	}
	out, err = g.Run(t.TempDir(), "clone", strings.Replace(s.URL(gittest.ReadToken), "/demo.git", "/other.git", 1), "x")
	if err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("clone of another project: err %v\n%s", err, out)
	}
}

func randomText(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)[:n]
}

// An object over the per-object limit, and a push over the push limit,
// are refused with a message naming the limit; nothing is stored.
func TestSizeLimits(t *testing.T) {
	s := gittest.NewServer(t, gittest.Options{
		StoreOpts:  []gitstore.Opt{gitstore.MaxObjectSize(64 << 10), gitstore.MaxRepoSize(4 << 20)},
		ServerOpts: []gitserver.Opt{gitserver.MaxPushSize(1 << 20)},
	})
	g := gittest.NewGit(t)
	dir := g.Clone(s.URL(gittest.WriteToken))
	g.CommitFiles(dir, "big", map[string]string{"big.txt": randomText(t, 100<<10)})
	out, err := g.Run(dir, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "over the per-object limit of 64 KiB") || !strings.Contains(out, "[remote rejected]") {
		t.Fatalf("oversized object: err %v\n%s", err, out)
	}
	t.Logf("git push of an oversized object:\n%s", out)

	g.Must(dir, "reset", "-q", "--hard", "HEAD~0")
	g.Must(dir, "rm", "-q", "big.txt")
	files := map[string]string{}
	for i := range 40 {
		// Random hex compresses to about half: 40 × 60 KiB → ~1.2 MiB of pack.
		files[fmt.Sprintf("f%02d.txt", i)] = randomText(t, 60<<10)
	}
	g.Must(dir, "commit", "-q", "--amend", "-m", "many files", "--allow-empty")
	g.CommitFiles(dir, "many", files)
	out, err = g.Run(dir, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "over the push size limit of 1 MiB") {
		t.Fatalf("oversized push: err %v\n%s", err, out)
	}
	t.Logf("git push over the push limit:\n%s", out)
	if h := head(t, s); !h.IsZero() {
		t.Fatalf("main moved to %s", h)
	}
}

// A server-side commit takes the push path (hook included) and a clone
// sees it; a commit on a parent that is no longer the head is refused.
func TestServerSideCommit(t *testing.T) {
	s := gittest.NewServer(t, gittest.Options{})
	g := gittest.NewGit(t)
	ctx := context.Background()
	author := object.Signature{Name: "Sluice", Email: "bot@sluice.dev", When: time.Unix(1700000000, 0).UTC()}
	first, rej, err := s.Git.Commit(ctx, s.Access, gitserver.CommitRequest{
		Branch:  "main",
		Files:   map[string][]byte{"pipelines/demo.yaml": []byte("name: demo\n"), "README.md": []byte("# demo\n")},
		Author:  author,
		Message: "Create project\n",
	})
	if err != nil || rej != nil {
		t.Fatalf("Commit: %v %+v", err, rej)
	}
	dir := g.Clone(s.URL(gittest.ReadToken))
	g.Must(dir, "fsck", "--full", "--strict")
	if got := strings.TrimSpace(g.Must(dir, "log", "-1", "--format=%H %an %s")); got != first.String()+" Sluice Create project" {
		t.Fatalf("clone's head: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "pipelines", "demo.yaml")); err != nil || string(b) != "name: demo\n" {
		t.Fatalf("file = %q, %v", b, err)
	}

	// A revert-style commit reusing the first tree, on top of a second.
	c1, err := gitstore.ReadCommit(s.Store.Repo(ctx, s.Project), first)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := s.Git.Commit(ctx, s.Access, gitserver.CommitRequest{Branch: "main", Parent: first,
		Files: map[string][]byte{"README.md": []byte("changed\n")}, Author: author, Message: "change"})
	if err != nil {
		t.Fatal(err)
	}
	third, _, err := s.Git.Commit(ctx, s.Access, gitserver.CommitRequest{Branch: "main", Parent: second,
		Tree: c1.Tree, Author: author, Message: "Revert"})
	if err != nil {
		t.Fatal(err)
	}
	g.Must(dir, "pull", "-q", "--ff-only")
	if got := strings.TrimSpace(g.Must(dir, "rev-parse", "HEAD")); got != third.String() {
		t.Fatalf("pulled %s, want %s", got, third)
	}
	if out := g.Must(dir, "diff", first.String(), "HEAD"); out != "" {
		t.Fatalf("revert differs from the first commit:\n%s", out)
	}

	// Stale parent: someone else committed since.
	_, _, err = s.Git.Commit(ctx, s.Access, gitserver.CommitRequest{Branch: "main", Parent: second,
		Files: map[string][]byte{"x": []byte("x")}, Author: author, Message: "late"})
	if !errors.Is(err, gitstore.ErrStaleRef) {
		t.Fatalf("commit on a stale parent: %v", err)
	}

	// The hook sees server-side commits too.
	s2 := gittest.NewServer(t, gittest.Options{Hook: rejectHook{lines: []string{"no"}}})
	_, rej, err = s2.Git.Commit(ctx, s2.Access, gitserver.CommitRequest{Branch: "main", Files: map[string][]byte{"a": nil}, Author: author, Message: "m"})
	if err != nil || rej == nil || rej.Reason != "pipelines failed validation" {
		t.Fatalf("Commit through a rejecting hook: %v %+v", err, rej)
	}
}
