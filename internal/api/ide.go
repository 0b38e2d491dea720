package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/validate"
)

// Repository is the IDE's way into a project's Git repository: the
// control plane fills it with its git store and git server, so this
// package holds no git logic. Without one (Config.Repository nil), the
// IDE sees empty branches and cannot commit.
type Repository interface {
	// Files returns the commit branch points at and every file of its
	// tree by slash path. A branch with no commit yet gives "" and no
	// files.
	Files(ctx context.Context, projectID uuid.UUID, branch string) (head string, files map[string][]byte, err error)
	// Commit writes c.Files as the whole tree of a commit on c.Branch on
	// top of c.Parent, through the same validation as `git push`. A
	// refusal comes back as its reason and lines, with a nil error; a
	// branch that moved since c.Parent gives an error matching
	// ErrRepositoryMoved.
	Commit(ctx context.Context, c RepositoryCommit) (sha string, rejection *RepositoryRejection, err error)
}

// RepositoryCommit is a commit the IDE asks for.
type RepositoryCommit struct {
	ProjectID          uuid.UUID
	Org, Project       string
	Branch             string
	Parent             string // "" for a branch's first commit
	Files              map[string][]byte
	AuthorName, Author string // Author is the email
	Message            string
	// UserID is recorded as the author of revisions; uuid.Nil when unknown.
	UserID uuid.UUID
}

// RepositoryRejection is a commit refused by validation: Lines are what
// `git push` would show.
type RepositoryRejection struct {
	Reason string
	Lines  []string
}

// ErrRepositoryMoved is matched by Repository.Commit's error when the
// branch no longer points at the parent.
var ErrRepositoryMoved = errors.New("the branch moved since the files were read")

// Limits of what the IDE reads and validates in one request.
const (
	ideMaxFiles = 2000
	ideMaxBytes = 64 << 20
)

type ideFile struct {
	Path string `json:"path"`
	Size int    `json:"size"`
	// Content is the file's text, for the paths asked for with ?path=.
	Content *string `json:"content,omitempty"`
}

type ideTreeBody struct {
	Branch string `json:"branch"`
	// Head is the commit the files are read from, "" when the branch has
	// none yet.
	Head  string    `json:"head"`
	Files []ideFile `json:"files"`
}

type ideCheckRequest struct {
	// Files are the edited files by path, laid over the deploy branch's
	// head: what is not listed is read from the branch.
	Files map[string]string `json:"files"`
	// Deleted are paths to leave out.
	Deleted []string `json:"deleted"`
}

func (b *ideCheckRequest) validate() []FieldError {
	var errs []FieldError
	if len(b.Files) > ideMaxFiles {
		errs = append(errs, FieldError{Field: "files", Detail: fmt.Sprintf("at most %d files", ideMaxFiles)})
	}
	for p := range b.Files {
		if err := checkIDEPath(p); err != nil {
			errs = append(errs, FieldError{Field: "files", Detail: err.Error()})
		}
	}
	for _, p := range b.Deleted {
		if err := checkIDEPath(p); err != nil {
			errs = append(errs, FieldError{Field: "deleted", Detail: err.Error()})
		}
	}
	return errs
}

// checkIDEPath accepts clean relative slash paths.
func checkIDEPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." ||
		strings.Contains(p, "\\") || strings.HasPrefix(p, ".git/") {
		return fmt.Errorf("%q is not a clean relative path", p)
	}
	return nil
}

// ideDiagnostic is one compiler or test message located in a file.
type ideDiagnostic struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	// Severity is "error" (it fails validation).
	Severity string `json:"severity"`
}

type ideCheckBody struct {
	Head string `json:"head"`
	// Failed is true when the files would be refused by a push.
	Failed bool `json:"failed"`
	// Lines are what `git push` would show, in order: compile errors,
	// PASS/FAIL lines with their diffs, a summary.
	Lines       []string        `json:"lines"`
	Diagnostics []ideDiagnostic `json:"diagnostics"`
	Passed      int             `json:"passed"`
	FailedTests int             `json:"failed_tests"`
	Pipelines   []string        `json:"pipelines"`
	DurationMS  float64         `json:"duration_ms"`
}

type ideCommitRequest struct {
	ideCheckRequest
	// Parent is the head the edits were made on: the commit fails with 409
	// when the branch moved since.
	Parent  string `json:"parent"`
	Message string `json:"message" required:"true"`
}

func (b *ideCommitRequest) validate() []FieldError {
	errs := b.ideCheckRequest.validate()
	if strings.TrimSpace(b.Message) == "" {
		errs = append(errs, FieldError{Field: "message", Detail: "say what the change does"})
	}
	errs = append(errs, checkText("message", b.Message, 10000)...)
	return errs
}

type ideCommitBody struct {
	Commit string `json:"commit"`
	// Rollouts are the rollouts the commit started, one per fleet whose
	// runners must change.
	Rollouts []rolloutBody `json:"rollouts"`
}

func (s *Server) ideResource() resource {
	return resource{prefix: "/projects/{projectID}/ide", tag: "ide", routes: []route{
		{method: http.MethodGet, path: "/files", op: "listIDEFiles", summary: "List the files of the deploy branch's head; with ?path= (repeatable), only those files, with their content",
			access: inProject, role: "viewer", resp: ideTreeBody{}, handle: s.ideFiles},
		{method: http.MethodPost, path: "/check", op: "checkIDEFiles", summary: "Compile the edited files over the deploy branch and run every *_test.yaml, as a push would",
			access: inProject, role: "developer", body: ideCheckRequest{}, resp: ideCheckBody{}, handle: s.ideCheck},
		{method: http.MethodPost, path: "/commit", op: "commitIDEFiles", summary: "Commit the edited files on the deploy branch through the same validation as git push (422 with the push's lines when refused)",
			access: inProject, role: "developer", body: ideCommitRequest{}, resp: ideCommitBody{}, status: http.StatusCreated, handle: s.ideCommit},
	}}
}

type ideProject struct {
	org, name, branch string
}

func (s *Server) ideProject(ctx context.Context, id uuid.UUID) (ideProject, error) {
	var p ideProject
	err := s.pool.QueryRow(ctx, `SELECT o.name, p.name, p.deploy_branch FROM projects p JOIN organizations o ON o.id = p.org_id WHERE p.id = $1`,
		id).Scan(&p.org, &p.name, &p.branch)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, notFound("project")
	}
	if p.branch == "" {
		p.branch = "main"
	}
	return p, err
}

// ideHead reads the deploy branch's head and files. Without a
// Repository (API tests), reads and checks see an empty branch and commits
// find no repository.
func (s *Server) ideHead(r *http.Request, write bool) (ideProject, string, map[string][]byte, error) {
	pa := projectFrom(r.Context())
	p, err := s.ideProject(r.Context(), pa.ID)
	if err != nil {
		return p, "", nil, err
	}
	if s.cfg.Repository == nil {
		if write {
			return p, "", nil, notFound("Git repository (this control plane serves none)")
		}
		return p, "", map[string][]byte{}, nil
	}
	head, files, err := s.cfg.Repository.Files(r.Context(), pa.ID, p.branch)
	if files == nil {
		files = map[string][]byte{}
	}
	return p, head, files, err
}

func (s *Server) ideFiles(w http.ResponseWriter, r *http.Request) error {
	want := r.URL.Query()["path"]
	for _, name := range want {
		if err := checkIDEPath(name); err != nil {
			return invalidField("path", "%s", err.Error())
		}
	}
	p, head, files, err := s.ideHead(r, false)
	if err != nil {
		return err
	}
	body := ideTreeBody{Branch: p.branch, Head: head, Files: []ideFile{}}
	if len(want) == 0 {
		for name, data := range files {
			body.Files = append(body.Files, ideFile{Path: name, Size: len(data)})
		}
	}
	for _, name := range want {
		data, ok := files[name]
		if !ok {
			return notFound("file " + name + " on " + p.branch)
		}
		text := string(data)
		body.Files = append(body.Files, ideFile{Path: name, Size: len(data), Content: &text})
	}
	sort.Slice(body.Files, func(i, j int) bool { return body.Files[i].Path < body.Files[j].Path })
	return writeJSON(w, http.StatusOK, body)
}

// overlay lays the request's edits over the branch's files.
func (b *ideCheckRequest) overlay(files map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(files)+len(b.Files))
	for p, d := range files {
		out[p] = d
	}
	for p, d := range b.Files {
		out[p] = []byte(d)
	}
	for _, p := range b.Deleted {
		delete(out, p)
	}
	return out
}

func (s *Server) ideCheck(w http.ResponseWriter, r *http.Request) error {
	var req ideCheckRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	_, head, files, err := s.ideHead(r, false)
	if err != nil {
		return err
	}
	ctx := r.Context()
	start := time.Now()
	previous, err := s.deploy.Previous(ctx, projectFrom(ctx).ID)
	if err != nil {
		return err
	}
	res, err := validate.Check(ctx, s.reg, req.overlay(files), previous)
	if err != nil {
		return err
	}
	body := ideCheckBody{Head: head, Failed: res.Failed, Lines: res.Lines, Diagnostics: diagnostics(res.Lines),
		Passed: res.Passed, FailedTests: res.FailedTests, Pipelines: []string{},
		DurationMS: float64(time.Since(start).Microseconds()) / 1000}
	if body.Lines == nil {
		body.Lines = []string{}
	}
	for _, p := range res.Pipelines {
		body.Pipelines = append(body.Pipelines, p.Name)
	}
	return writeJSON(w, http.StatusOK, body)
}

func (s *Server) ideCommit(w http.ResponseWriter, r *http.Request) error {
	var req ideCommitRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	p, head, files, err := s.ideHead(r, true)
	if err != nil {
		return err
	}
	if req.Parent != head {
		return conflict("the branch moved since you opened the files (it is at " + shortSHA(head) + "): reload and apply your edits again")
	}
	ctx := r.Context()
	pa, who := projectFrom(ctx), PrincipalFrom(ctx)
	name, email := who.Name, who.Name
	if who.Kind == KindToken || !strings.Contains(email, "@") {
		email = "token-" + who.TokenID.String() + "@tokens.sluice.invalid"
	} else {
		name, _, _ = strings.Cut(email, "@")
	}
	sha, rej, err := s.cfg.Repository.Commit(ctx, RepositoryCommit{
		ProjectID: pa.ID, Org: p.org, Project: p.name, Branch: p.branch, Parent: head,
		Files: req.overlay(files), AuthorName: name, Author: email, Message: req.Message, UserID: who.UserID,
	})
	switch {
	case errors.Is(err, ErrRepositoryMoved):
		return conflict("the branch moved while committing: reload and apply your edits again")
	case err != nil:
		return err
	case rej != nil:
		var fields []FieldError
		for _, d := range diagnostics(rej.Lines) {
			fields = append(fields, FieldError{Field: d.File, Detail: d.Message, Line: d.Line, Column: d.Column})
		}
		return problem(http.StatusUnprocessableEntity, "commit-rejected", rej.Reason+"\n"+strings.Join(rej.Lines, "\n"), fields...)
	}
	body := ideCommitBody{Commit: sha, Rollouts: []rolloutBody{}}
	rows, err := s.pool.Query(ctx, `SELECT `+rolloutColumns+` FROM rollouts ro JOIN fleets f ON f.id = ro.fleet_id
		WHERE ro.project_id = $1 AND ro.commit_sha = $2 ORDER BY ro.created_at`, pa.ID, sha)
	if err != nil {
		return err
	}
	for rows.Next() {
		var b rolloutBody
		if err := rows.Scan(b.scanDest()...); err != nil {
			rows.Close()
			return err
		}
		body.Rollouts = append(body.Rollouts, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		return s.audit(ctx, tx, r, auditEntry{action: "repository.commit", resourceType: "commit", resourceID: sha,
			orgID: &pa.OrgID, projectID: &pa.ID, details: map[string]any{"branch": p.branch, "message": firstLineOf(req.Message)}})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, body)
}

// diagLine matches `file:line:col: message`, optionally after FAIL and
// indentation (a failed test's diff lines name their file too).
var diagLine = regexp.MustCompile(`^(?:FAIL )?\s*([^\s:]+):(\d+):(\d+): (.*)$`)

// diagnostics finds the located messages in validation lines, folding the
// indented lines that follow one (a diff) into its message.
func diagnostics(lines []string) []ideDiagnostic {
	out := []ideDiagnostic{}
	for _, l := range lines {
		if m := diagLine.FindStringSubmatch(l); m != nil {
			line, _ := strconv.Atoi(m[2])
			col, _ := strconv.Atoi(m[3])
			out = append(out, ideDiagnostic{File: m[1], Line: line, Column: col, Message: m[4], Severity: "error"})
			continue
		}
		if len(out) > 0 && strings.HasPrefix(l, "     ") {
			out[len(out)-1].Message += "\n" + strings.TrimPrefix(l, "     ")
		}
	}
	return out
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	if s == "" {
		return "no commit"
	}
	return s
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
