package api

import (
	"context"
	"encoding/json"
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
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
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
		{method: http.MethodPost, path: "/try", op: "tryIDEPipeline", summary: "Run one pipeline of the edited files on sample records on the in-memory driver, as its tests run: the outputs and dead letters with their reasons (422 when it does not compile)",
			access: inProject, role: "developer", body: ideTryRequest{}, resp: ideTryBody{}, handle: s.ideTry},
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

// Limits of a "try it" run: records in one request, and how long they may
// take together (scripts have their own budgets inside that).
const (
	ideTryMaxRecords = 1000
	ideTryTimeout    = 10 * time.Second
)

type ideTryRequest struct {
	// Files and Deleted are the edits laid over the deploy branch, as for
	// check.
	ideCheckRequest
	// Pipeline is the path of the pipeline file to run.
	Pipeline string `json:"pipeline" required:"true"`
	// Records are produced to the pipeline's source topic in order.
	Records []ideTryRecord `json:"records" required:"true"`
	// Advance moves the virtual clock after the last record, as a Go
	// duration (e.g. 1m), closing the windows it passes.
	Advance string `json:"advance"`
}

// ideTryRecord is one sample record.
type ideTryRecord struct {
	// Key is the record's key: a string as it is, anything else as JSON.
	Key any `json:"key"`
	// Value is the record's value as JSON; for a raw source, a JSON string
	// is its bytes. null is a tombstone.
	Value   json.RawMessage   `json:"value"`
	Headers map[string]string `json:"headers"`
	// Timestamp defaults to the virtual clock (2026-01-01T00:00:00Z).
	Timestamp *time.Time `json:"timestamp"`
}

func (b *ideTryRequest) validate() []FieldError {
	errs := b.ideCheckRequest.validate()
	if err := checkIDEPath(b.Pipeline); err != nil {
		errs = append(errs, FieldError{Field: "pipeline", Detail: err.Error()})
	}
	if len(b.Records) == 0 || len(b.Records) > ideTryMaxRecords {
		errs = append(errs, FieldError{Field: "records", Detail: fmt.Sprintf("send 1 to %d records", ideTryMaxRecords)})
	}
	for i, r := range b.Records {
		if len(r.Value) > 0 && !json.Valid(r.Value) {
			errs = append(errs, FieldError{Field: fmt.Sprintf("records[%d].value", i), Detail: "is not JSON"})
		}
	}
	if b.Advance != "" {
		if d, err := time.ParseDuration(b.Advance); err != nil || d < 0 || d > 366*24*time.Hour {
			errs = append(errs, FieldError{Field: "advance", Detail: "must be a duration like 1m, at most a year"})
		}
	}
	return errs
}

// ideTryOutput is one record the pipeline wrote.
type ideTryOutput struct {
	Topic string `json:"topic"`
	// Key is null for a record without a key.
	Key *string `json:"key"`
	// Value is the record's value: JSON as written, or a string for raw
	// output (and for output that is not JSON).
	Value     json.RawMessage   `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
	Timestamp time.Time         `json:"timestamp"`
}

// ideTryDeadLetter is one record sent to the DLQ.
type ideTryDeadLetter struct {
	// Reason is the DLQ reason (sluice.reason), Error the message and Step
	// the step that refused the record.
	Reason string `json:"reason"`
	Error  string `json:"error"`
	Step   string `json:"step,omitempty"`
	// Input is the index of the sample record it came from, -1 when the
	// driver cannot tell.
	Input   int               `json:"input"`
	Key     *string           `json:"key"`
	Value   json.RawMessage   `json:"value"`
	Headers map[string]string `json:"headers,omitempty"`
}

type ideTryBody struct {
	Pipeline string `json:"pipeline"`
	// Outputs are in the order written: the sink's records and those of
	// steps that write to other topics.
	Outputs []ideTryOutput     `json:"outputs"`
	DLQ     []ideTryDeadLetter `json:"dlq"`
	// Errors are records the driver could not process at all (an operator
	// failed), as "record N: message".
	Errors     []string `json:"errors"`
	DurationMS float64  `json:"duration_ms"`
}

// ideTry compiles one pipeline of the edited files and runs the sample
// records through it on the in-memory driver, the way its tests run.
func (s *Server) ideTry(w http.ResponseWriter, r *http.Request) error {
	var req ideTryRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	_, _, files, err := s.ideHead(r, false)
	if err != nil {
		return err
	}
	all := req.overlay(files)
	if _, ok := all[req.Pipeline]; !ok {
		return invalidField("pipeline", "no file %s in the edited files or on the branch", req.Pipeline)
	}
	start := time.Now()
	p, err := validate.Compile(s.reg, all, req.Pipeline)
	if err != nil {
		lines := compileLines(req.Pipeline, err)
		var fields []FieldError
		for _, d := range diagnostics(lines) {
			fields = append(fields, FieldError{Field: d.File, Detail: d.Message, Line: d.Line, Column: d.Column})
		}
		return problem(http.StatusUnprocessableEntity, "does-not-compile", req.Pipeline+" does not compile\n"+strings.Join(lines, "\n"), fields...)
	}
	plan := p.Plan
	d, err := driver.New(plan)
	if err != nil {
		return problem(http.StatusUnprocessableEntity, "does-not-compile", req.Pipeline+": "+err.Error())
	}
	ctx, cancel := context.WithTimeout(r.Context(), ideTryTimeout)
	defer cancel()
	body := ideTryBody{Pipeline: plan.Name, Outputs: []ideTryOutput{}, DLQ: []ideTryDeadLetter{}, Errors: []string{}}
	for i, rec := range req.Records {
		if err := ctx.Err(); err != nil {
			body.Errors = append(body.Errors, fmt.Sprintf("record %d and later: not run, the records of one try may take %s together", i+1, ideTryTimeout))
			break
		}
		m, err := tryMessage(plan, rec)
		if err == nil {
			err = d.Produce(ctx, m)
		}
		if err != nil {
			body.Errors = append(body.Errors, fmt.Sprintf("record %d: %v", i+1, err))
		}
	}
	if req.Advance != "" {
		adv, _ := time.ParseDuration(req.Advance)
		if err := d.Advance(ctx, adv); err != nil {
			body.Errors = append(body.Errors, "advancing the clock: "+err.Error())
		}
	}
	topics := []string{plan.Sink.Topic}
	seen := map[string]bool{plan.Sink.Topic: true, plan.DLQ: true}
	for _, st := range plan.Steps {
		for _, t := range st.Topics {
			if !seen[t] {
				seen[t] = true
				topics = append(topics, t)
			}
		}
	}
	for _, t := range topics {
		format := pipeline.FormatJSON
		if t == plan.Sink.Topic {
			format = plan.Sink.Format
		}
		for _, m := range d.Topic(t) {
			body.Outputs = append(body.Outputs, ideTryOutput{Topic: t, Key: tryKey(m.Key), Value: tryValue(m.Value, format),
				Headers: tryHeaders(m.Headers), Timestamp: m.Timestamp})
		}
	}
	for _, m := range d.Topic(plan.DLQ) {
		dl := ideTryDeadLetter{Input: -1, Key: tryKey(m.Key), Value: tryValue(m.Value, plan.Source.Format), Headers: map[string]string{}}
		for _, h := range m.Headers {
			switch h.Key {
			case engine.HeaderReason:
				dl.Reason = string(h.Value)
			case engine.HeaderError:
				dl.Error = string(h.Value)
			case engine.HeaderStep:
				dl.Step = string(h.Value)
			case engine.HeaderSource:
				dl.Input = sourceIndex(plan.Source.Topic, string(h.Value))
				dl.Headers[h.Key] = string(h.Value)
			default:
				dl.Headers[h.Key] = string(h.Value)
			}
		}
		body.DLQ = append(body.DLQ, dl)
	}
	body.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	return writeJSON(w, http.StatusOK, body)
}

// tryMessage builds the source record for a sample, as a test's input is.
func tryMessage(plan *pipeline.Plan, rec ideTryRecord) (engine.Message, error) {
	var m engine.Message
	key, err := record.KeyBytes(rec.Key)
	if err != nil {
		return m, err
	}
	m.Key = key
	if v := rec.Value; len(v) > 0 && string(v) != "null" {
		var str string
		if plan.Source.Format == pipeline.FormatRaw && json.Unmarshal(v, &str) == nil {
			m.Value = []byte(str)
		} else {
			m.Value = append([]byte(nil), v...)
		}
	}
	for k, v := range rec.Headers {
		m.Headers = append(m.Headers, record.Header{Key: k, Value: []byte(v)})
	}
	sort.Slice(m.Headers, func(i, j int) bool { return m.Headers[i].Key < m.Headers[j].Key })
	if rec.Timestamp != nil {
		m.Timestamp = *rec.Timestamp
	}
	return m, nil
}

func tryKey(k []byte) *string {
	if k == nil {
		return nil
	}
	s := string(k)
	return &s
}

// tryValue shows a value: JSON as it is when the format is JSON and the
// bytes are JSON, otherwise as a JSON string.
func tryValue(v []byte, format string) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	if format != pipeline.FormatRaw && json.Valid(v) {
		return json.RawMessage(v)
	}
	b, _ := json.Marshal(string(v))
	return b
}

func tryHeaders(hs []record.Header) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		out[h.Key] = string(h.Value)
	}
	return out
}

// sourceIndex reads the offset from a dead letter's sluice.source header
// ("topic/partition/offset"): in the driver, an offset of the source topic
// is the sample's index. A later stage's dead letter names its repartition
// topic instead: -1.
func sourceIndex(source, header string) int {
	rest, ok := strings.CutPrefix(header, source+"/")
	if !ok {
		return -1
	}
	_, off, ok := strings.Cut(rest, "/")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(off)
	if err != nil {
		return -1
	}
	return n
}

// compileLines turns a compile error into one line per diagnostic, as
// validation prints them.
func compileLines(file string, err error) []string {
	var l diag.List
	if errors.As(err, &l) {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = e.Error()
		}
		return out
	}
	var e *diag.Error
	if errors.As(err, &e) {
		return []string{e.Error()}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, file) {
		msg = file + ": " + msg
	}
	return []string{msg}
}
