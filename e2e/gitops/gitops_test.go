package gitops

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

// TestPushToRollback walks the loop on one platform with three runners:
// a push that deploys to every runner, pushes that are refused, and a
// canary that sends everything to the DLQ and is rolled back by itself.
func TestPushToRollback(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "clicks", 3)
	p := startPlatform(t, pgtest.NewDatabase(t), brokers)
	for i := 1; i <= 3; i++ {
		p.startAgent("runner-"+string(rune('0'+i)), filepath.Join(t.TempDir(), "agent"), true)
	}
	seed := p.waitRunners(3, "clicks", func(string) bool { return true }, 90*time.Second)
	f := feed(t, brokers, "clicks", 3, 60)

	g := newGit(t)
	repo := p.clone(g)
	head := func() string {
		o, _, err := g.run(repo, "ls-remote", "origin", "refs/heads/main")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(o)[0]
	}

	t.Run("a valid push runs on every runner", func(t *testing.T) {
		edit(t, repo, "pipelines/clicks.yaml", func(s string) string {
			return strings.Replace(s, "        ms: ms\n", "        ms: ms\n        rev: '\"two\"'\n", 1)
		})
		edit(t, repo, "pipelines/clicks_test.yaml", func(s string) string {
			return strings.Replace(s, "{user: ada, page: /pricing, ms: 1200}", "{user: ada, page: /pricing, ms: 1200, rev: two}", 1)
		})
		g.must(repo, "commit", "-qam", "tag outputs with their revision")
		_, stderr, err := g.run(repo, "push", "origin", "main")
		if err != nil {
			t.Fatalf("push: %v\n%s", err, stderr)
		}
		for _, want := range []string{"PASS pipelines/clicks_test.yaml", "new revisions of clicks", "started on fleet dev"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("push output lacks %q:\n%s", want, stderr)
			}
		}
		two := p.waitRunners(3, "clicks", func(d string) bool { return d != seed }, 60*time.Second)
		// Every input partition, so every runner that owns one, writes the
		// new revision's field. The feed sends user uN to partition N%3;
		// output partitions say nothing about the runner (the sink's
		// records have no key, so the producer sticks to a partition for
		// a batch, and two runners can fill one while another stays
		// empty for a minute).
		var seen map[int32]bool
		deadline := time.Now().Add(90 * time.Second)
		for len(seen) < 3 {
			if time.Now().After(deadline) {
				// Say who held what: which runner ran which partitions,
				// and at what.
				for _, r := range p.runners() {
					t.Logf("runner %s live=%v: %+v", r.Name, r.Live, r.Report.Pipelines)
				}
				t.Fatalf("outputs with rev two from input partitions %v only, after 90s", seen)
			}
			seen = map[int32]bool{}
			for _, r := range outputs(t, brokers, "clicks.clean") {
				var v struct{ User, Rev string }
				if json.Unmarshal(r.Value, &v) != nil || v.Rev != "two" {
					continue
				}
				if n, err := strconv.Atoi(strings.TrimPrefix(v.User, "u")); err == nil {
					seen[int32(n%3)] = true
				}
			}
		}
		if two == seed {
			t.Fatal("the digest did not change")
		}
	})

	t.Run("a push that does not compile or fails its test is refused", func(t *testing.T) {
		before := head()
		edit(t, repo, "pipelines/clicks.yaml", func(s string) string {
			return strings.Replace(s, "  sink: {topic: clicks.clean}", "  sink: {topik: clicks.clean}", 1)
		})
		g.must(repo, "commit", "-qam", "typo")
		_, stderr, err := g.run(repo, "push", "origin", "main")
		if err == nil {
			t.Fatal("a pipeline with a typo was accepted")
		}
		for _, want := range []string{
			"remote: pipelines/clicks.yaml:18:10: unknown field \"topik\" in spec.sink; did you mean \"topic\"?",
			"! [remote rejected] main -> main (pipelines failed validation)",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("push stderr lacks %q:\n%s", want, stderr)
			}
		}
		if head() != before {
			t.Fatal("the refused push moved main")
		}
		g.must(repo, "reset", "-q", "--hard", "HEAD~1")

		edit(t, repo, "pipelines/clicks.yaml", func(s string) string { return strings.Replace(s, "page: lower(page)", "page: upper(page)", 1) })
		g.must(repo, "commit", "-qam", "shout")
		_, stderr, err = g.run(repo, "push", "origin", "main")
		if err == nil {
			t.Fatal("a push whose test fails was accepted")
		}
		for _, want := range []string{
			"remote: FAIL pipelines/clicks_test.yaml:5:5: a click is lower-cased and trimmed to what analytics needs",
			"remote:      pipelines/clicks_test.yaml:9:9: clicks.clean record 1: value differs:",
			`/PRICING`,
			"remote: 1 passed, 1 failed",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("push stderr lacks %q:\n%s", want, stderr)
			}
		}
		if head() != before {
			t.Fatal("the refused push moved main")
		}
		g.must(repo, "reset", "-q", "--hard", "HEAD~1")
	})

	t.Run("a canary sending everything to the DLQ is rolled back", func(t *testing.T) {
		p.api("PATCH", "/fleets/"+p.fleet, map[string]any{"rollout": map[string]any{"strategy": "canary", "bake_seconds": 4, "max_dlq_ratio": 0.2}}, nil)
		good := head()
		// The bug: production clicks have no agent field; the tests'
		// inputs all do, so they pass.
		edit(t, repo, "pipelines/clicks.yaml", func(s string) string {
			return strings.Replace(s, "    - map:\n", "    - filter: len(agent) < 500\n    - map:\n", 1)
		})
		g.must(repo, "commit", "-qam", "drop clicks with absurd user agents")
		if _, stderr, err := g.run(repo, "push", "origin", "main"); err != nil {
			t.Fatalf("push: %v\n%s", err, stderr)
		}
		bad := head()
		var ro struct {
			Items []struct {
				ID, Commit, Phase string
				RevertCommit      string `json:"revert_commit"`
			} `json:"items"`
		}
		var id string
		kafkatest.Eventually(t, 90*time.Second, "the canary rollout to roll back", func() bool {
			p.api("GET", "/rollouts?limit=100", nil, &ro)
			for _, r := range ro.Items {
				if r.Commit == bad {
					id = r.ID
					return r.Phase == "RolledBack" && r.RevertCommit != ""
				}
			}
			return false
		})
		var got struct{ Phase, Status, Reason string }
		p.api("GET", "/rollouts/"+id, nil, &got)
		if got.Status != "Degraded" || !strings.Contains(got.Reason, "DLQ") || !strings.Contains(got.Reason, "pipeline clicks") {
			t.Errorf("rollout %+v: want Degraded with a reason naming the DLQ", got)
		}
		var events struct{ Items []struct{ Message string } }
		p.api("GET", "/rollouts/"+id+"/events", nil, &events)
		var story []string
		for _, e := range events.Items {
			story = append(story, e.Message)
		}
		joined := strings.Join(story, "\n")
		for _, want := range []string{"promoting canary runner", "health gate failed", "revert commit"} {
			if !strings.Contains(joined, want) {
				t.Errorf("events lack %q:\n%s", want, joined)
			}
		}
		// Git is the source of truth: the revert is on main, with the
		// good commit's files.
		g.must(repo, "pull", "-q", "--ff-only")
		log := g.must(repo, "log", "--format=%s%n%b", "-3")
		if !strings.Contains(log, `Revert "drop clicks with absurd user agents"`) || !strings.Contains(log, "This reverts commit "+bad) {
			t.Errorf("git log lacks the revert:\n%s", log)
		}
		if d := g.must(repo, "diff", good, "HEAD", "--", "pipelines"); d != "" {
			t.Errorf("the revert does not restore the good files:\n%s", d)
		}
		// Every runner runs the good revision again and the feed flows.
		p.waitRunners(3, "clicks", func(d string) bool { return true }, 60*time.Second)
		for _, r := range p.runners() {
			for _, pl := range r.Report.Pipelines {
				if pl.State == "failed" {
					t.Errorf("runner %s: pipeline %s failed: %s", r.Name, pl.Name, pl.Error)
				}
			}
		}
		if f.count() == 0 {
			t.Fatal("the feeder produced nothing")
		}
	})

	t.Run("a runner credential sees only its own fleet", func(t *testing.T) {
		var other struct{ ID string }
		p.api("POST", "/fleets", map[string]any{"name": "other", "module": "local"}, &other)
		tok := p.bootstrapToken(other.ID)
		register := func() (int, agentproto.RegisterResponse) {
			var resp agentproto.RegisterResponse
			code := post(t, p.base+agentproto.RegisterPath, tok, agentproto.RegisterRequest{Name: "intruder"}, &resp)
			return code, resp
		}
		code, reg := register()
		if code != http.StatusCreated {
			t.Fatalf("register: %d", code)
		}
		if code, _ := register(); code != http.StatusUnauthorized {
			t.Errorf("a used bootstrap token registered again: %d", code)
		}
		var a agentproto.Assignments
		if code := get(t, p.base+agentproto.AssignmentsPath+"?generation=0", reg.Credential, &a); code != 200 || len(a.Pipelines) != 0 {
			t.Errorf("the other fleet's runner got %d %+v; want no pipelines", code, a)
		}
		digest := p.waitRunners(1, "clicks", func(string) bool { return true }, 10*time.Second)
		if code := get(t, p.base+agentproto.BundlesPath+digest, reg.Credential, nil); code != http.StatusNotFound {
			t.Errorf("a runner of another fleet fetched the dev fleet's bundle: %d", code)
		}
	})
}

// TestQuickStart follows the README's quick start command by command:
// make dev's control plane (with its own PostgreSQL and runner on the
// embedded Kafka), clone with the credential helper it prints, kcat in and
// out, edit, push, and kcat shows the new output.
func TestQuickStart(t *testing.T) {
	kcat := lookPath(t, "kcat")
	dir, err := os.MkdirTemp("", "sluice-quickstart-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as the postgres user when we are root.
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr, kafka := freeAddr(t), freeAddr(t)
	dev := startProc(t, "controlplane dev", []string{"DATABASE_URL=", "KAFKA_BROKERS="}, bin.controlplane, "dev",
		"--data-dir", filepath.Join(dir, ".sluice"), "--listen", addr, "--runner", bin.runner,
		"--runner-listen", freeAddr(t), "--embedded-addr", kafka)
	// The banner comes in several writes: wait for its last line, not the
	// URL, before reading the commands it prints.
	dev.WaitFor(t, bannerEndRE, 90*time.Second)
	out := dev.Output()
	for _, want := range []string{"set -a; . ", "git clone -c credential.helper=", "kcat -P -b " + kafka + " -t clicks", "kcat -C -b " + kafka + " -t clicks.clean"} {
		if !strings.Contains(out, want) {
			t.Fatalf("make dev does not print %q:\n%s", want, out)
		}
	}
	// The printed commands, run as printed, through a shell.
	shell := func(cmd string) string {
		t.Helper()
		o, err := sh(t, dir, cmd)
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, o)
		}
		return o
	}
	line := func(prefix string) string {
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line starting %q in:\n%s", prefix, out)
		return ""
	}
	env := line("set -a; . ")
	shell(env + " && " + line("git clone -c credential.helper="))
	waitOutput := func(want string) {
		kafkatest.Eventually(t, 60*time.Second, "kcat to read "+want, func() bool {
			o, _ := sh(t, dir, kcat+" -C -b "+kafka+" -t clicks.clean -o beginning -e -q")
			return strings.Contains(o, want)
		})
	}
	// The runner may still be starting: produce until the first output.
	kafkatest.Eventually(t, 90*time.Second, "the first output", func() bool {
		shell(line("echo '{\"user\":\"ada\""))
		o, _ := sh(t, dir, kcat+" -C -b "+kafka+" -t clicks.clean -o beginning -e -q")
		return strings.Contains(o, `"page":"/pricing"`)
	})
	// The README's change: flag slow clicks, in the pipeline and its test.
	repo := filepath.Join(dir, "playground")
	edit(t, repo, "pipelines/clicks.yaml", func(s string) string {
		return strings.Replace(s, "        ms: ms\n", "        ms: ms\n        slow: ms > 1000\n", 1)
	})
	edit(t, repo, "pipelines/clicks_test.yaml", func(s string) string {
		return strings.Replace(s, "{user: ada, page: /pricing, ms: 1200}", "{user: ada, page: /pricing, ms: 1200, slow: true}", 1)
	})
	pushOut := shell(env + " && cd playground && git -c user.name=Ada -c user.email=ada@example.com commit -qam 'flag slow clicks' && git push 2>&1")
	if !strings.Contains(pushOut, "main -> main") {
		t.Fatalf("push: %s", pushOut)
	}
	kafkatest.Eventually(t, 60*time.Second, "an output of the new revision", func() bool {
		shell(line("echo '{\"user\":\"ada\""))
		o, _ := sh(t, dir, kcat+" -C -b "+kafka+" -t clicks.clean -o beginning -e -q")
		return strings.Contains(o, `"slow":true`)
	})
	waitOutput(`"slow":true`)
	// The demo project's traffic flows too (a `runner demo-traffic` child
	// process of controlplane dev): its vans report on their input topic.
	kafkatest.Eventually(t, 60*time.Second, "the demo traffic on vehicles.telemetry", func() bool {
		o, _ := sh(t, dir, kcat+" -C -b "+kafka+" -t vehicles.telemetry -o beginning -c 5 -e -q")
		return strings.Count(o, `"vehicle_id":"van-`) >= 5
	})
	dev.Stop(t)
	if !strings.Contains(dev.Output(), "runner stopped") {
		t.Errorf("controlplane dev did not stop its runner:\n%s", tail(dev.Output(), 2000))
	}
}
