package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/gitops/agentserver"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/rollout"
	"github.com/sluicehq/sluice/internal/agent"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgnotify"
	"github.com/sluicehq/sluice/internal/runtime"
)

const dlqPipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: payments
spec:
  source:
    topic: payments
  steps:
    - filter: %s
  sink:
    topic: card-payments
`

type dlqView struct {
	Topic   string `json:"topic"`
	Total   int64  `json:"total"`
	Reasons []struct {
		Reason string `json:"reason"`
		Count  int64  `json:"count"`
	} `json:"reasons"`
	Letters  []agentproto.DeadLetter `json:"letters"`
	Previews bool                    `json:"previews"`
}

type replayView struct {
	ID        string   `json:"id"`
	State     string   `json:"state"`
	Replayed  int      `json:"replayed"`
	Errors    []string `json:"errors"`
	Duplicate bool     `json:"duplicate"`
}

// The DLQ viewer and replay end to end, with a real runner agent, the
// real agent server and API over one database, on kfake: a filter that
// fails on some records sends them to the DLQ; the API lists them with
// reasons and offsets and, with record previews off, without a key or
// value (a marker in them appears in no status report and nowhere in the
// database); enabling previews shows them redacted; a fixed revision and a
// replay produce their outputs exactly once, and an identical second
// request replays nothing more.
func TestDLQViewerAndReplay(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	ctx := context.Background()
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "payments", 2)
	kafkatest.CreateTopic(t, brokers, "card-payments", 2)
	kafkatest.CreateTopic(t, brokers, "orders", 1)
	kafkatest.CreateTopic(t, brokers, "big-orders", 1)

	owner := e.tokenClient(w.ownerB)
	proj := "/api/v1/projects/" + w.projB
	pipe := owner.do("POST", proj+"/pipelines", map[string]any{"name": "payments"}).want(201).str("id")
	owner.do("POST", proj+"/pipelines/"+pipe+"/revisions", map[string]any{"source": fmt.Sprintf(dlqPipeline, `lower(kind) == "card"`)}).want(201)
	dep := owner.do("POST", proj+"/deployments", map[string]any{"fleet_id": w.fleetB, "pipeline_id": pipe}).want(201).str("id")
	if _, err := e.pool.Exec(ctx, "UPDATE fleets SET bake_seconds = 0 WHERE id = $1", w.fleetB); err != nil {
		t.Fatal(err)
	}

	// Every status report a runner posts is kept, to look for the marker.
	var (
		repMu   sync.Mutex
		reports []string
	)
	store := deploy.New(e.pool, all.New())
	listener := pgnotify.New(e.pool, deploy.Channel, nil)
	lctx, lcancel := context.WithCancel(ctx)
	t.Cleanup(lcancel)
	go func() { _ = listener.Run(lctx) }()
	rec, err := rollout.New(e.pool, rollout.Interval(100*time.Millisecond), rollout.StatusEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rec.Run(lctx) }()
	agents := agentserver.New(store, listener, nil)
	as := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == agentproto.StatusPath {
			b, _ := io.ReadAll(r.Body)
			repMu.Lock()
			reports = append(reports, string(b))
			repMu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(b)))
		}
		agents.ServeHTTP(rw, r)
	}))
	t.Cleanup(as.Close)
	var token string
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		bt, err := deploy.MintBootstrapToken(ctx, tx, uuid.MustParse(w.fleetB), 1, time.Hour, nil)
		token = bt.Secret
		return err
	}); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent's log:\n%s", logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt, err := runtime.New(runtime.Brokers(brokers...), runtime.CommitInterval(50*time.Millisecond), runtime.SessionTimeout(time.Second),
		runtime.RetryBackoff(50*time.Millisecond, time.Second), runtime.StateDir(t.TempDir()), runtime.Logger(log),
		runtime.LagInterval(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	startAgent := func() (stop func()) {
		a, err := agent.New(agent.ControlPlane(as.URL), agent.AllowHTTP(), agent.BootstrapToken(token), agent.DataDir(dataDir),
			agent.Registry(all.New()), agent.Runtime(rt), agent.Logger(log), agent.Name("worker"), agent.PollWait(2*time.Second),
			agent.HeartbeatInterval(200*time.Millisecond), agent.RetryBackoff(20*time.Millisecond, 200*time.Millisecond),
			agent.Kafka(brokers))
		if err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(actx) }()
		return func() { cancel(); <-done }
	}
	stopAgent := startAgent()
	t.Cleanup(func() {
		stopAgent()
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		_ = rt.Close(cctx)
	})

	// 5 good records, 3 that the filter fails on (kind is a number), whose
	// key and value carry a marker.
	const marker = "MARKER-7f3c91"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, &kgo.Record{Topic: "payments", Key: fmt.Appendf(nil, "good-%d", i), Value: fmt.Appendf(nil, `{"kind":"card","amount":%d}`, 20+i)})
	}
	for i := 0; i < 3; i++ {
		recs = append(recs, &kgo.Record{Topic: "payments", Key: fmt.Appendf(nil, "%s-key-%d", marker, i),
			Value:   fmt.Appendf(nil, `{"kind":%d,"amount":%d,"secret":"%s","card":{"number":"4111-%d"}}`, i, 50+i, marker, i),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte(marker)}}})
	}
	// A hot key whose bytes carry the marker: records the filter drops
	// (kind cash), all on one key.
	hotKey := marker + "-hot"
	for i := 0; i < 200; i++ {
		recs = append(recs, &kgo.Record{Topic: "payments", Key: []byte(hotKey), Value: fmt.Appendf(nil, `{"kind":"cash","amount":%d}`, i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	type skewView struct {
		HotKeys []struct {
			Hash string `json:"hash"`
		} `json:"hot_keys"`
		KeyPreviews map[string]agentproto.Preview `json:"key_previews"`
	}
	getSkew := func() skewView {
		var v skewView
		if err := json.Unmarshal(e.tokenClient(w.viewerB).do("GET", proj+"/pipelines/"+pipe+"/skew", nil).want(200).body, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	viewer := e.tokenClient(w.viewerB)
	base := proj + "/pipelines/" + pipe
	getDLQ := func() dlqView {
		var v dlqView
		if err := json.Unmarshal(viewer.do("GET", base+"/dlq", nil).want(200).body, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	waitDLQ := func(what string, ok func(dlqView) bool) dlqView {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			v := getDLQ()
			if ok(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: %+v", what, v)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	v := waitDLQ("3 dead letters", func(v dlqView) bool { return v.Total == 3 && len(v.Letters) == 3 })
	if v.Topic != "payments.dlq" || v.Previews || len(v.Reasons) != 1 || v.Reasons[0].Reason != "expression" || v.Reasons[0].Count != 3 {
		t.Fatalf("dlq view %+v", v)
	}
	for _, dl := range v.Letters {
		if dl.SourceTopic != "payments" || dl.Error == "" || dl.Key != nil || dl.Value != nil || dl.KeyHash == "" || dl.Revision == "" {
			t.Errorf("dead letter %+v", dl)
		}
		names := map[string]bool{}
		for _, h := range dl.Headers {
			names[h.Name] = true
			if h.Name == "trace" && h.Value != nil {
				t.Errorf("header trace has a value without previews: %q", *h.Value)
			}
		}
		if !names["trace"] || !names["sluice.reason"] {
			t.Errorf("headers %+v", dl.Headers)
		}
	}
	// The hot key is reported, as a hash only.
	var hot string
	for deadline := time.Now().Add(30 * time.Second); hot == ""; {
		sk := getSkew()
		if len(sk.HotKeys) > 0 {
			hot = sk.HotKeys[0].Hash
			if len(sk.KeyPreviews) != 0 {
				t.Fatalf("key previews with previews off: %+v", sk.KeyPreviews)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no hot key reported")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// With previews off the marker (in keys, values, a header and the hot
	// key) never left the runner: not in a report, not anywhere in the
	// database.
	time.Sleep(time.Second) // a few more reports
	repMu.Lock()
	for _, rep := range reports {
		if strings.Contains(rep, marker) {
			t.Fatalf("a status report holds the marker: %s", rep)
		}
	}
	n := len(reports)
	repMu.Unlock()
	if n == 0 {
		t.Fatal("no reports")
	}
	assertNotInDatabase(t, e, marker)

	// Previews on (owner; audited): the letters carry redacted values.
	owner.do("PATCH", proj, map[string]any{"record_previews": map[string]any{"enabled": true, "redact": []string{"secret", "card.number"}, "max_bytes": 512}}).want(200)
	e.tokenClient(w.viewerB).do("PATCH", proj, map[string]any{"record_previews": map[string]any{"enabled": false}}).want(403)
	v = waitDLQ("previews", func(v dlqView) bool { return v.Previews && len(v.Letters) == 3 && v.Letters[0].Value != nil })
	for _, dl := range v.Letters {
		if dl.Value == nil || strings.Contains(dl.Value.Text, marker) || strings.Contains(dl.Value.Text, "4111") || !strings.Contains(dl.Value.Text, `"secret":"[redacted]"`) {
			t.Errorf("value preview %+v", dl.Value)
		}
		if dl.Key == nil || !strings.HasPrefix(dl.Key.Text, marker) {
			t.Errorf("key preview %+v", dl.Key)
		}
	}
	// The hot key now shows its key beside its hash.
	for deadline := time.Now().Add(45 * time.Second); ; {
		if pv, ok := getSkew().KeyPreviews[hot]; ok {
			if pv.Text != hotKey {
				t.Fatalf("hot key preview %+v, want %q", pv, hotKey)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no preview of hot key %s: %+v", hot, getSkew())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var audited int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'project.update' AND details ? 'record_previews'`).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("audit: %d, %v", audited, err)
	}

	// A fixed revision; the sink holds the 5 good records meanwhile.
	rev2 := owner.do("POST", base+"/revisions", map[string]any{"source": fmt.Sprintf(dlqPipeline, "amount > 10")}).want(201).str("id")
	owner.do("PATCH", proj+"/deployments/"+dep, map[string]any{"revision_id": rev2}).want(200)
	waitRevision(t, e, w.fleetB, "payments", rev2)

	// Replay the three dead letters by partition and offset (developer).
	var offsets []agentproto.DLQOffset
	for _, dl := range v.Letters {
		offsets = append(offsets, agentproto.DLQOffset{Partition: dl.Partition, Offset: dl.Offset})
	}
	viewer.do("POST", base+"/dlq/replay", map[string]any{"offsets": offsets}).want(403)
	dev := e.tokenClient(tokenFor(t, e, w.projB, "developer"))
	var rp replayView
	if err := json.Unmarshal(dev.do("POST", base+"/dlq/replay", map[string]any{"offsets": offsets}).want(202).body, &rp); err != nil {
		t.Fatal(err)
	}
	waitReplay := func(id string) replayView {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			var list struct{ Items []replayView }
			if err := json.Unmarshal(viewer.do("GET", base+"/dlq/replays", nil).want(200).body, &list); err != nil {
				t.Fatal(err)
			}
			for _, it := range list.Items {
				if it.ID == id && (it.State == "done" || it.State == "failed") {
					return it
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replay %s not finished: %+v", id, list.Items)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	done := waitReplay(rp.ID)
	if done.State != "done" || done.Replayed != 3 || len(done.Errors) != 0 {
		t.Fatalf("replay %+v", done)
	}
	sink := func() (int, int) {
		var all, replayed int
		if _, err := kafkatest.ReadToEnd(ctx, brokers, "card-payments", func(r *kgo.Record) error {
			all++
			for _, h := range r.Headers {
				if h.Key == agentproto.HeaderReplayedFrom && strings.HasPrefix(string(h.Value), "payments.dlq/") {
					replayed++
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return all, replayed
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		all, replayed := sink()
		if all == 8 && replayed == 3 {
			break
		}
		if all > 8 || time.Now().After(deadline) {
			t.Fatalf("sink holds %d records, %d replayed; want 8 and 3", all, replayed)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The same request again is a duplicate; a restart of the agent does
	// not replay it either.
	var again replayView
	if err := json.Unmarshal(dev.do("POST", base+"/dlq/replay", map[string]any{"offsets": offsets}).want(202).body, &again); err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.ID != rp.ID {
		t.Fatalf("second request %+v", again)
	}
	stopAgent()
	stopAgent = startAgent()
	time.Sleep(3 * time.Second)
	if all, replayed := sink(); all != 8 || replayed != 3 {
		t.Fatalf("after the second request and a restart the sink holds %d records, %d replayed; want 8 and 3", all, replayed)
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'pipeline.dlq.replay'`).Scan(&audited); err != nil || audited != 2 {
		t.Fatalf("replay audit: %d, %v", audited, err)
	}
}

// assertNotInDatabase fails when any row of any table of the control
// plane's database holds s in its text form.
func assertNotInDatabase(t *testing.T, e *env, s string) {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables", len(tables))
	}
	for _, tb := range tables {
		var n int
		if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM "+tb+" x WHERE x::text LIKE '%' || $1 || '%'", s).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("table %s holds %q in %d rows", tb, s, n)
		}
	}
}

// waitRevision waits until the fleet's runners report running the
// revision.
func waitRevision(t *testing.T, e *env, fleet, pipeline, revision string) {
	t.Helper()
	var digest string
	if err := e.pool.QueryRow(context.Background(), "SELECT digest FROM revisions WHERE id = $1", revision).Scan(&digest); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM runners u, jsonb_array_elements(u.report -> 'pipelines') p
			WHERE u.fleet_id = $1 AND p ->> 'name' = $2 AND p ->> 'digest' = $3 AND p ->> 'state' = 'running'`, fleet, pipeline, digest).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("pipeline %s revision %s never ran", pipeline, revision)
}

// tokenFor mints a token with role in project.
func tokenFor(t *testing.T, e *env, project, role string) string {
	t.Helper()
	r := e.admin.do("POST", "/api/v1/projects/"+project+"/tokens", map[string]any{"name": role + "-dlq-token", "role": role}).want(201).json()
	return r["secret"].(string)
}
