package validate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/gitops/validate"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pipeline"
)

const scripted = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: scored}
spec:
  source: {topic: in}
  steps:
    - script: {file: lib/score.js}
  sink: {topic: out}
`

const scoreJS = `function process(r) { return {score: r.value.n * 2}; }
`

const scoredTest = `pipeline: scored
tests:
  - name: doubles
    input:
      - {value: {n: 2}}
    expect:
      - {value: {score: 4}}
`

func repo() map[string][]byte {
	return map[string][]byte{
		"README.md":                       []byte("# not a pipeline\n"),
		"pipelines/scored.yaml":           []byte(scripted),
		"pipelines/lib/score.js":          []byte(scoreJS),
		"pipelines/lib/unused.js":         []byte("function process(r) { return r.value; }\n"),
		"pipelines/scored_test.yaml":      []byte(scoredTest),
		"pipelines/.hidden/broken.yaml":   []byte("not: [valid"),
		"elsewhere/not-a-pipeline.yaml":   []byte("kind: Something\n"),
		"pipelines/fixtures/README.notes": []byte("side notes"),
	}
}

func check(t *testing.T, files map[string][]byte, prev validate.Previous) validate.Result {
	t.Helper()
	res, err := validate.Check(context.Background(), all.New(), files, prev)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A good commit compiles, passes its tests, and bundles exactly the side
// files its pipeline opened.
func TestGoodCommit(t *testing.T) {
	res := check(t, repo(), nil)
	if res.Failed {
		t.Fatalf("failed:\n%s", strings.Join(res.Lines, "\n"))
	}
	if res.Passed != 1 || len(res.Pipelines) != 1 {
		t.Fatalf("passed %d, pipelines %d; want 1 and 1\n%s", res.Passed, len(res.Pipelines), strings.Join(res.Lines, "\n"))
	}
	p := res.Pipelines[0]
	if p.Name != "scored" || p.Path != "pipelines/scored.yaml" {
		t.Errorf("pipeline %q at %q", p.Name, p.Path)
	}
	if got := strings.Join(p.SideFiles, ","); got != "pipelines/lib/score.js" {
		t.Errorf("side files %q, want only the script the pipeline reads", got)
	}
	b, err := agentproto.DecodeBundle(p.Data, p.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Files["lib/score.js"]) != scoreJS || string(b.Source()) != scripted || len(b.Files) != 2 {
		t.Errorf("bundle files %v", keys(b.Files))
	}
	// The bundle compiles on its own, as a runner compiles it.
	if _, err := (&pipeline.Compiler{Registry: all.New(), Files: b.FS()}).Compile(b.Path, b.Source()); err != nil {
		t.Errorf("bundle does not compile alone: %v", err)
	}
}

// Changing only a side file changes the digest, so it redeploys; changing
// a file the pipeline does not read does not.
func TestSideFilesInDigest(t *testing.T) {
	base := check(t, repo(), nil).Pipelines[0].Digest

	files := repo()
	files["pipelines/lib/unused.js"] = []byte("// changed\n")
	if d := check(t, files, nil).Pipelines[0].Digest; d != base {
		t.Errorf("an unused file changed the digest")
	}

	files = repo()
	files["pipelines/lib/score.js"] = []byte("function process(r) { return {score: r.value.n * 2}; } // tweak\n")
	if d := check(t, files, nil).Pipelines[0].Digest; d == base {
		t.Errorf("a changed script kept the digest: the pipeline would not redeploy")
	}
}

// A compile error and a failing test are reported as the pusher should see
// them: file:line:col and the diff.
func TestRejections(t *testing.T) {
	files := repo()
	files["pipelines/scored.yaml"] = []byte(strings.Replace(scripted, "topic: out", "topik: out", 1))
	res := check(t, files, nil)
	if !res.Failed {
		t.Fatal("a pipeline with an unknown field passed")
	}
	out := strings.Join(res.Lines, "\n")
	if !strings.Contains(out, "pipelines/scored.yaml:8:") || !strings.Contains(out, "topik") {
		t.Errorf("no positioned error for the typo:\n%s", out)
	}
	if !strings.Contains(out, `the tests of pipeline "scored" did not run`) {
		t.Errorf("its tests do not say why they did not run:\n%s", out)
	}

	files = repo()
	files["pipelines/lib/score.js"] = []byte("function process(r) { return {score: r.value.n * 3}; }\n")
	res = check(t, files, nil)
	out = strings.Join(res.Lines, "\n")
	if !res.Failed || res.FailedTests != 1 {
		t.Fatalf("a failing test passed:\n%s", out)
	}
	if !strings.Contains(out, "FAIL pipelines/scored_test.yaml:3:") || !strings.Contains(out, "6") {
		t.Errorf("the failure does not show the position and the value got:\n%s", out)
	}
}

const counting = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: counts}
spec:
  source: {topic: clicks}
  steps:
    - window: {by: url, tumbling: 1m, grace: 0s, aggregates: {n: count}}
  sink: {topic: counts}
`

// A change of a stateful step's shape against the running revision needs
// reset: true; with it, the reset is reported.
func TestStateCompatibility(t *testing.T) {
	prevFiles := map[string][]byte{"pipelines/counts.yaml": []byte(counting)}
	prev := check(t, prevFiles, nil).Pipelines[0].Plan
	previous := func(name string) *pipeline.Plan {
		if name == "counts" {
			return prev
		}
		return nil
	}
	changed := strings.Replace(counting, "tumbling: 1m", "tumbling: 5m", 1)
	res := check(t, map[string][]byte{"pipelines/counts.yaml": []byte(changed)}, previous)
	if !res.Failed {
		t.Fatalf("a changed window passed without reset:\n%s", strings.Join(res.Lines, "\n"))
	}
	if out := strings.Join(res.Lines, "\n"); !strings.Contains(out, "reset") {
		t.Errorf("the error does not mention reset:\n%s", out)
	}
	withReset := strings.Replace(changed, "    - window:", "    - reset: true\n      window:", 1)
	res = check(t, map[string][]byte{"pipelines/counts.yaml": []byte(withReset)}, previous)
	if res.Failed || len(res.Pipelines) != 1 || len(res.Pipelines[0].StateResets) != 1 {
		t.Fatalf("reset: true was not accepted and reported:\n%s", strings.Join(res.Lines, "\n"))
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
