package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/observability"
)

// addRunner registers a runner in fleet directly in the database and
// stores rep as its last report, as the agent server does.
func addRunner(t *testing.T, e *env, fleet, name string, rep agentproto.StatusReport) uuid.UUID {
	t.Helper()
	id := uuid.New()
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO runners (id, fleet_id, name, credential_hash) VALUES ($1, $2, $3, $4)`, id, fleet, name, hash); err != nil {
		t.Fatal(err)
	}
	report(t, e, id, rep)
	return id
}

func report(t *testing.T, e *env, runner uuid.UUID, rep agentproto.StatusReport) {
	t.Helper()
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(context.Background(), `UPDATE runners SET report = $2, last_seen_at = now() WHERE id = $1`, runner, data); err != nil {
		t.Fatal(err)
	}
}

// runnerLag is one runner's report of pipeline "orders" (one stage, four
// partitions, every runner samples all four): it holds owned, and
// partition 3 falls behind with a hot key.
func runnerLag(at time.Time, owned []int32, hot bool) agentproto.StatusReport {
	var parts []observability.PartitionLag
	for p := range int32(4) {
		pl := observability.PartitionLag{Partition: p, State: observability.StateActive, End: 1000, Committed: 990, Lag: 10, TimeLagMs: 500, ConsumeRate: 100}
		if p == 3 {
			pl.Committed, pl.Lag, pl.TimeLagMs, pl.Status, pl.Reason = 600, 400, 42000, observability.StatusWarning, "lag not decreasing over the window"
		}
		for _, o := range owned {
			pl.Owned = pl.Owned || o == p
		}
		parts = append(parts, pl)
	}
	l := &observability.PipelineLag{SampledAt: at, Stages: []observability.StageLag{observability.SummarizeStage(0, "orders", parts)}}
	if hot {
		l.HotKeys = []observability.HotKey{{Hash: "c0ffee00c0ffee00", Stage: 0, Topic: "orders", Partition: 3, Count: 300, Records: 1000, Share: 0.3}}
		l.Restores = []observability.Restore{{Step: "count", Partition: 3, Restoring: true, Done: 50, Total: 200, Rate: 10, ETASeconds: 15}}
		l.Stores = []observability.StoreSize{{Step: "count", Partition: 2, Kind: "disk", Keys: 1000, Bytes: 64000, Estimated: true},
			{Step: "count", Partition: 3, Kind: "disk", Keys: 500, Bytes: 32000, Estimated: true}}
	}
	observability.Rollup(l)
	return agentproto.StatusReport{Generation: 1, Pipelines: []agentproto.PipelineStatus{{Name: "orders", State: "running", Partitions: owned, Lag: l.ForReport()}}}
}

// Two runners of the fleet each hold two partitions: the lag, skew and
// health endpoints merge their reports into one view of the pipeline,
// and the history keeps one sample per 10 s whatever the number of
// runners.
func TestLagAPI(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	// History keeps one sample per pipeline per 10 s bucket of the
	// database's clock (this machine's): start early in a bucket so that
	// both reports below land in the same one.
	for time.Now().Unix()%10 > 4 {
		time.Sleep(100 * time.Millisecond)
	}
	now := time.Now().UTC()
	r1 := addRunner(t, e, w.fleetB, "runner-1", runnerLag(now, []int32{0, 1}, false))
	addRunner(t, e, w.fleetB, "runner-2", runnerLag(now.Add(time.Second), []int32{2, 3}, true))
	c := e.tokenClient(w.viewerB)
	base := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB

	var lag struct {
		Current *observability.PipelineLag `json:"current"`
		Stale   bool                       `json:"stale"`
		Runners []struct {
			Name       string  `json:"name"`
			Live       bool    `json:"live"`
			Partitions []int32 `json:"partitions"`
		} `json:"runners"`
		History []struct {
			Status     string `json:"status"`
			Lag        int64  `json:"lag"`
			EventAgeMs int64  `json:"event_age_ms"`
		} `json:"history"`
	}
	if err := json.Unmarshal(c.do("GET", base+"/lag", nil).want(200).body, &lag); err != nil {
		t.Fatal(err)
	}
	if lag.Current == nil || lag.Stale || len(lag.Runners) != 2 || !lag.Runners[0].Live {
		t.Fatalf("lag view %+v", lag)
	}
	st := lag.Current.Stages[0]
	if len(st.Partitions) != 4 || st.Lag != 430 || st.Status != observability.StatusWarning {
		t.Fatalf("stage %+v", st)
	}
	for _, p := range st.Partitions {
		if !p.Owned {
			t.Errorf("partition %d not taken from the runner holding it", p.Partition)
		}
	}
	if len(lag.History) != 1 || lag.History[0].Status != "WARNING" || lag.History[0].Lag != 430 || lag.History[0].EventAgeMs != 42000 {
		t.Fatalf("history %+v: want one sample (two reports in one 10 s bucket)", lag.History)
	}

	h := c.do("GET", base+"/health", nil).want(200).json()
	slowest, _ := h["slowest"].(map[string]any)
	if h["status"] != "WARNING" || h["healthy"] != false || slowest == nil || slowest["topic"] != "orders" || h["live_runners"] != float64(2) {
		t.Fatalf("health %v", h)
	}
	if rs, _ := h["restoring"].([]any); len(rs) != 1 || rs[0].(map[string]any)["runner"] != "runner-2" || rs[0].(map[string]any)["eta_seconds"] != float64(15) {
		t.Fatalf("restoring %v", h["restoring"])
	}
	// State: each store with its runner, and the sums per step.
	var hs struct {
		Source string `json:"source"`
		State  struct {
			Keys   int64 `json:"keys"`
			Bytes  int64 `json:"bytes"`
			Steps  []map[string]any
			Stores []observability.StoreSize `json:"stores"`
		} `json:"state"`
	}
	if err := json.Unmarshal(c.do("GET", base+"/health", nil).want(200).body, &hs); err != nil {
		t.Fatal(err)
	}
	if hs.Source != "runners" || hs.State.Keys != 1500 || hs.State.Bytes != 96000 || len(hs.State.Stores) != 2 || hs.State.Stores[0].Runner != "runner-2" ||
		len(hs.State.Steps) != 1 || hs.State.Steps[0]["step"] != "count" || hs.State.Steps[0]["stores"] != float64(2) || hs.State.Steps[0]["estimated"] != true {
		t.Fatalf("state %+v", hs)
	}

	var skew observability.SkewView
	if err := json.Unmarshal(c.do("GET", base+"/skew", nil).want(200).body, &skew); err != nil {
		t.Fatal(err)
	}
	if len(skew.HotKeys) != 1 || skew.HotKeys[0].Runner != "runner-2" || skew.HotKeys[0].Partition != 3 {
		t.Fatalf("hot keys %+v", skew.HotKeys)
	}
	if skew.Stages[0].MaxLagPartition != 3 || len(skew.Stages[0].Flagged) != 1 || skew.RunnerImbalance != 1 {
		t.Fatalf("skew %+v", skew)
	}

	// Ranges: bad times and ranges beyond the history are refused.
	for _, q := range []string{"since=yesterday", "until=2026-13-01T00:00:00Z",
		"since=" + url.QueryEscape(now.Add(-31*24*time.Hour).Format(time.RFC3339)),
		"since=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339))} {
		c.do("GET", base+"/lag?"+q, nil).want(422)
	}
	old := url.QueryEscape(now.Add(-23 * time.Hour).Format(time.RFC3339))
	var empty struct {
		History []any `json:"history"`
	}
	if err := json.Unmarshal(c.do("GET", base+"/lag?since="+old+"&until="+url.QueryEscape(now.Add(-22*time.Hour).Format(time.RFC3339)), nil).want(200).body, &empty); err != nil || len(empty.History) != 0 {
		t.Fatalf("an empty range gave %v, %v", empty.History, err)
	}

	// A sample past 24 h is pruned when the next one is stored.
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO lag_samples (pipeline_id, bucket, at, status, lag, event_age_ms, stages)
		VALUES ($1, floor(extract(epoch FROM now()) / 10)::bigint - 9000, now() - interval '25 hours', 'OK', 0, 0, '[]'),
		       ($1, floor(extract(epoch FROM now()) / 10)::bigint - 100, now() - interval '1000 seconds', 'OK', 0, 0, '[]')`, w.pipeB); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `DELETE FROM lag_samples WHERE pipeline_id = $1 AND at > now() - interval '1 minute'`, w.pipeB); err != nil {
		t.Fatal(err)
	}
	report(t, e, r1, runnerLag(now.Add(2*time.Second), []int32{0, 1}, false))
	var n, stale int
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE at < now() - interval '24 hours') FROM lag_samples WHERE pipeline_id = $1`, w.pipeB).Scan(&n, &stale); err != nil {
		t.Fatal(err)
	}
	if n != 2 || stale != 0 {
		t.Fatalf("%d samples, %d older than 24 h; want the new one and the 1000 s old one", n, stale)
	}

	// A report the trigger cannot read is still stored.
	if _, err := e.pool.Exec(ctx, `UPDATE runners SET report = '{"pipelines":[{"name":"orders","lag":{"stages":[{"lag":"many"}]}}]}' WHERE id = $1`, r1); err != nil {
		t.Fatalf("a malformed lag view failed the report: %v", err)
	}
}

// With no live runner the last reports still show the lag, marked stale,
// and health is not healthy.
func TestLagAPIStale(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	id := addRunner(t, e, w.fleetB, "gone", runnerLag(time.Now(), []int32{0, 1, 2, 3}, false))
	if _, err := e.pool.Exec(context.Background(), `UPDATE runners SET last_seen_at = now() - interval '5 minutes' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	c := e.tokenClient(w.viewerB)
	base := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB
	h := c.do("GET", base+"/health", nil).want(200).json()
	if h["stale"] != true || h["healthy"] != false || h["live_runners"] != float64(0) || h["status"] != "WARNING" {
		t.Fatalf("health %v", h)
	}
	l := c.do("GET", base+"/lag", nil).want(200).json()
	if l["current"] == nil || l["stale"] != true || l["source"] != "stale" {
		t.Fatalf("lag %v", l)
	}
}

// BenchmarkLagAPIHistory is GET /lag over a full 24 h of history (8,640
// samples of a two-stage pipeline) with two runners reporting 64
// partitions each, and reports the p99 latency (target: < 50 ms).
func BenchmarkLagAPIHistory(b *testing.B) {
	e := newEnv(b)
	w := e.world()
	ctx := context.Background()
	mk := func(owned []int32) agentproto.StatusReport {
		var stages []observability.StageLag
		for s := range 2 {
			var parts []observability.PartitionLag
			for p := range int32(64) {
				parts = append(parts, observability.PartitionLag{Partition: p, State: observability.StateActive, End: 1 << 30, Committed: 1<<30 - 100,
					Lag: 100, TimeLagMs: 1500, ConsumeRate: 2000, ProduceRate: 2000, Owned: int(p)%2 == int(owned[0])})
			}
			stages = append(stages, observability.SummarizeStage(s, fmt.Sprintf("topic-%d", s), parts))
		}
		l := &observability.PipelineLag{SampledAt: time.Now(), Stages: stages}
		observability.Rollup(l)
		return agentproto.StatusReport{Pipelines: []agentproto.PipelineStatus{{Name: "orders", State: "running", Partitions: owned, Lag: l}}}
	}
	addRunnerTB(b, e, w.fleetB, "r0", mk([]int32{0}))
	addRunnerTB(b, e, w.fleetB, "r1", mk([]int32{1}))
	if _, err := e.pool.Exec(ctx, `DELETE FROM lag_samples`); err != nil {
		b.Fatal(err)
	}
	stages := `[{"stage":0,"topic":"topic-0","status":"OK","lag":6400,"max_time_lag_ms":1500,"consume_rate":128000,"produce_rate":128000},
		{"stage":1,"topic":"topic-1","status":"OK","lag":6400,"max_time_lag_ms":1500,"consume_rate":128000,"produce_rate":128000}]`
	if _, err := e.pool.Exec(ctx, `INSERT INTO lag_samples (pipeline_id, bucket, at, status, lag, event_age_ms, stages)
		SELECT $1, floor(extract(epoch FROM now()) / 10)::bigint - i, now() - make_interval(secs => i * 10), 'OK', 12800, 1500, $2::jsonb
		FROM generate_series(0, 8639) i`, w.pipeB, stages); err != nil {
		b.Fatal(err)
	}
	c := e.tokenClient(w.viewerB)
	path := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB + "/lag?since=" + url.QueryEscape(time.Now().Add(-24*time.Hour+time.Minute).UTC().Format(time.RFC3339))
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		r := c.do("GET", path, nil).want(200)
		lat = append(lat, time.Since(start))
		var body struct {
			History []json.RawMessage `json:"history"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || len(body.History) < 700 || len(body.History) > 720 {
			b.Fatalf("%d points (%v), want 720 for 8,640 samples", len(body.History), err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func addRunnerTB(b *testing.B, e *env, fleet, name string, rep agentproto.StatusReport) {
	b.Helper()
	data, err := json.Marshal(rep)
	if err != nil {
		b.Fatal(err)
	}
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO runners (id, fleet_id, name, credential_hash, report) VALUES ($1, $2, $3, $4, $5)`,
		uuid.New(), fleet, name, hash, data); err != nil {
		b.Fatal(err)
	}
}

// A long range is thinned to at most 720 points, and thinning keeps the
// worst sample of each run: one STALLED sample among 1,500 OK ones shows.
func TestLagAPIHistoryThinning(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO lag_samples (pipeline_id, bucket, at, status, lag, event_age_ms, stages)
		SELECT $1, floor(extract(epoch FROM now()) / 10)::bigint - i, now() - make_interval(secs => i * 10),
			CASE WHEN i = 777 THEN 'STALLED' ELSE 'OK' END, i, 0, '[]'
		FROM generate_series(1, 1500) i`, w.pipeB); err != nil {
		t.Fatal(err)
	}
	c := e.tokenClient(w.viewerB)
	since := url.QueryEscape(time.Now().Add(-5 * time.Hour).UTC().Format(time.RFC3339))
	var body struct {
		History []struct {
			At     time.Time `json:"at"`
			Status string    `json:"status"`
			Lag    int64     `json:"lag"`
		} `json:"history"`
	}
	if err := json.Unmarshal(c.do("GET", "/api/v1/projects/"+w.projB+"/pipelines/"+w.pipeB+"/lag?since="+since, nil).want(200).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.History) != 500 { // runs of ceil(1500/720) = 3 samples
		t.Fatalf("%d points for 1,500 samples, want 500 (at most 720)", len(body.History))
	}
	stalled := 0
	for i, p := range body.History {
		if i > 0 && !p.At.After(body.History[i-1].At) {
			t.Fatalf("points out of order at %d", i)
		}
		if p.Status == "STALLED" {
			stalled++
		}
	}
	if stalled != 1 {
		t.Fatalf("%d STALLED points, want the one sample kept", stalled)
	}
}

// History beyond 24 h: when a sample is stored, the minutes (and ten
// minutes) that ended since the last rollup are rolled up, each point the
// worst sample of its period, and points past their retention (7 days at
// 1 min, 30 days at 10 min) are pruned. The API serves a range at the
// finest resolution kept for all of it, thinned to 720 points, and one
// STALLED sample among thousands of OK ones shows at every resolution.
func TestLagAPIHistoryDownsampled(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	ctx := context.Background()
	// Three hours of 10 s samples, one STALLED about 83 minutes ago;
	// 1-minute points from 6 days to 1 day ago (one 8 days old, past its
	// retention); 10-minute points from 20 to 8 days ago (one 31 days old).
	for _, q := range []string{
		`INSERT INTO lag_samples (pipeline_id, bucket, at, status, lag, event_age_ms, stages)
			SELECT $1, floor(extract(epoch FROM now()) / 10)::bigint - i, now() - make_interval(secs => i * 10),
				CASE WHEN i = 500 THEN 'STALLED' ELSE 'OK' END, i, i, '[]'
			FROM generate_series(1, 1080) i`,
		`INSERT INTO lag_history (pipeline_id, resolution, bucket, at, status, lag, event_age_ms, stages, samples)
			SELECT $1::uuid, 60, floor(extract(epoch FROM now()) / 60)::bigint - i, to_timestamp((floor(extract(epoch FROM now()) / 60)::bigint - i) * 60),
				'OK', 1, 1, '[]'::jsonb, 6
			FROM generate_series(1440, 6 * 1440) i UNION ALL
			SELECT $1::uuid, 60, floor(extract(epoch FROM now()) / 60)::bigint - 8 * 1440, now() - interval '8 days', 'OK', 1, 1, '[]'::jsonb, 6`,
		`INSERT INTO lag_history (pipeline_id, resolution, bucket, at, status, lag, event_age_ms, stages, samples)
			SELECT $1::uuid, 600, floor(extract(epoch FROM now()) / 600)::bigint - i, to_timestamp((floor(extract(epoch FROM now()) / 600)::bigint - i) * 600),
				'OK', 1, 1, '[]'::jsonb, 60
			FROM generate_series(8 * 144, 20 * 144) i UNION ALL
			SELECT $1::uuid, 600, floor(extract(epoch FROM now()) / 600)::bigint - 31 * 144, now() - interval '31 days', 'OK', 1, 1, '[]'::jsonb, 60`,
	} {
		if _, err := e.pool.Exec(ctx, q, w.pipeB); err != nil {
			t.Fatal(err)
		}
	}
	// A runner's report stores a sample, which rolls up what ended.
	addRunner(t, e, w.fleetB, "runner-1", runnerLag(time.Now(), []int32{0, 1, 2, 3}, false))

	var minutes, stalledMinutes, tens, stalledTens, expired int
	if err := e.pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE resolution = 60 AND at > now() - interval '4 hours'),
			count(*) FILTER (WHERE resolution = 60 AND status = 'STALLED' AND samples = 6),
			count(*) FILTER (WHERE resolution = 600 AND at > now() - interval '4 hours'),
			count(*) FILTER (WHERE resolution = 600 AND status = 'STALLED'),
			count(*) FILTER (WHERE resolution = 60 AND at < now() - interval '7 days' OR resolution = 600 AND at < now() - interval '30 days')
		FROM lag_history WHERE pipeline_id = $1`, w.pipeB).Scan(&minutes, &stalledMinutes, &tens, &stalledTens, &expired); err != nil {
		t.Fatal(err)
	}
	// 1,080 samples make 180 or 181 minutes (the oldest may be partial);
	// the current minute is not complete and waits.
	if minutes < 179 || minutes > 181 || stalledMinutes != 1 || tens < 17 || tens > 19 || stalledTens != 1 || expired != 0 {
		t.Fatalf("rolled up: %d minutes (%d STALLED), %d ten-minutes (%d STALLED), %d past retention", minutes, stalledMinutes, tens, stalledTens, expired)
	}

	c := e.tokenClient(w.viewerB)
	base := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB + "/lag"
	for _, tc := range []struct {
		since      time.Duration
		resolution int
		min, max   int
	}{
		// Thinning keeps one point per run of ceil(n/720) samples.
		{2 * time.Hour, 10, 355, 720},        // 720 or 721 samples: runs of 1 or 2
		{3 * 24 * time.Hour, 60, 600, 620},   // ~3,060 points, runs of 5
		{20 * 24 * time.Hour, 600, 600, 625}, // ~2,470 points, runs of 4
		{12 * time.Hour, 10, 535, 541},       // 1,080 or 1,081 samples, runs of 2
	} {
		var body struct {
			ResolutionSeconds int `json:"resolution_seconds"`
			History           []struct {
				At     time.Time `json:"at"`
				Status string    `json:"status"`
			} `json:"history"`
		}
		q := "?since=" + url.QueryEscape(time.Now().Add(-tc.since).UTC().Format(time.RFC3339))
		if err := json.Unmarshal(c.do("GET", base+q, nil).want(200).body, &body); err != nil {
			t.Fatal(err)
		}
		stalled := 0
		for i, p := range body.History {
			if i > 0 && !p.At.After(body.History[i-1].At) {
				t.Fatalf("%s: points out of order at %d", tc.since, i)
			}
			if p.Status == "STALLED" {
				stalled++
			}
		}
		if body.ResolutionSeconds != tc.resolution || len(body.History) < tc.min || len(body.History) > tc.max || stalled != 1 {
			t.Errorf("since %s ago: resolution %d s, %d points, %d STALLED; want %d s, %d..%d points, 1 STALLED",
				tc.since, body.ResolutionSeconds, len(body.History), stalled, tc.resolution, tc.min, tc.max)
		}
	}
}

// BenchmarkLagAPIHistoryWeek is GET /lag over 7 days of 1-minute points
// (10,080, thinned to 720) and reports the p99 latency.
func BenchmarkLagAPIHistoryWeek(b *testing.B) {
	e := newEnv(b)
	w := e.world()
	ctx := context.Background()
	stages := `[{"stage":0,"topic":"topic-0","status":"OK","lag":6400,"max_time_lag_ms":1500,"consume_rate":128000,"produce_rate":128000},
		{"stage":1,"topic":"topic-1","status":"OK","lag":6400,"max_time_lag_ms":1500,"consume_rate":128000,"produce_rate":128000}]`
	if _, err := e.pool.Exec(ctx, `INSERT INTO lag_history (pipeline_id, resolution, bucket, at, status, lag, event_age_ms, stages, samples)
		SELECT $1::uuid, 60, floor(extract(epoch FROM now()) / 60)::bigint - i, now() - make_interval(secs => i * 60), 'OK', 12800, 1500, $2::jsonb, 6
		FROM generate_series(1, 10079) i`, w.pipeB, stages); err != nil {
		b.Fatal(err)
	}
	c := e.tokenClient(w.viewerB)
	path := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB + "/lag?since=" + url.QueryEscape(time.Now().Add(-7*24*time.Hour+time.Minute).UTC().Format(time.RFC3339))
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		r := c.do("GET", path, nil).want(200)
		lat = append(lat, time.Since(start))
		var body struct {
			ResolutionSeconds int               `json:"resolution_seconds"`
			History           []json.RawMessage `json:"history"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.ResolutionSeconds != 60 || len(body.History) < 700 || len(body.History) > 720 {
			b.Fatalf("%d points at %d s (%v), want 720 at 60 s", len(body.History), body.ResolutionSeconds, err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
