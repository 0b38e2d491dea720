// Package runtime runs many compiled pipelines in one process on Kafka.
//
// Each pipeline is its own consumer group, with its own clients and its own
// goroutines (a run goroutine, and workers for large polls): pipelines share
// no goroutine and no bounded queue, so a slow, failing or hot pipeline
// back-pressures only itself. Under exactly-once (the
// default) a pipeline consumes, transforms and produces inside Kafka
// transactions of one commit interval each (franz-go's
// GroupTransactSession); at-least-once commits offsets after its outputs are
// flushed. Stateful steps keep one store per task (memory, or Pebble on
// disk) whose writes go to a compacted changelog topic in the same
// transaction and reach the store only once it commits; a task restores its
// stores from the changelog before it processes (state.go). A pipeline
// whose operator panics or hangs fails alone and is restarted with
// back-off; the process and the other pipelines go on.
//
// Apply changes the running set live: pipelines are added, restarted on a
// new revision, and removed, each without touching the others.
package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/state/changelog"
	"github.com/sluicehq/sluice/observability"
)

// Pipeline is one pipeline the runtime should run.
type Pipeline struct {
	Plan *pipeline.Plan
	// Revision identifies what was compiled; a change restarts the pipeline
	// on the new plan. It is written to DLQ headers.
	Revision string
	// Group is the consumer group; default "sluice-<pipeline name>".
	Group string
}

func (p Pipeline) group() string {
	if p.Group != "" {
		return p.Group
	}
	return "sluice-" + p.Plan.Name
}

// State is where a pipeline is in its life.
type State string

// Pipeline states, as shown in status and /readyz.
const (
	Starting State = "starting"
	Waiting  State = "waiting" // for an input topic to exist
	Running  State = "running"
	Failed   State = "failed" // waiting to restart after an error
	Stopped  State = "stopped"
)

// Status is a pipeline's current state, for /readyz and the control plane.
type Status struct {
	Name       string    `json:"name"`
	Revision   string    `json:"revision"`
	State      State     `json:"state"`
	Error      string    `json:"error,omitempty"`
	Restarts   int       `json:"restarts"`
	Partitions []int32   `json:"partitions"`
	Processed  uint64    `json:"processed"`
	DeadLetter uint64    `json:"dead_letter"`
	Since      time.Time `json:"since"`
	// Restores is the progress of the last restore of each state store
	// this runner holds (stateful pipelines only).
	Restores []RestoreStatus `json:"restores,omitempty"`
	// Stores is the size of each state store of the tasks this runner
	// holds, measured after a commit at most every 5 s (stateful
	// pipelines only).
	Stores []observability.StoreSize `json:"stores,omitempty"`
	// Lag is the pipeline's lag and skew on every stage and partition,
	// as of its last sample (lag.go); nil before the first.
	Lag *observability.PipelineLag `json:"lag,omitempty"`
}

// Runtime runs pipelines. Create it with New; stop it with Close.
type Runtime struct {
	cfg            config
	metrics        *metrics
	restoreMetrics *changelog.Metrics
	restorer       *changelog.Restorer
	admin          *kadm.Client
	lagMetrics     *observability.Metrics
	heads          *headReader // lag.go

	applyMu sync.Mutex
	mu      sync.Mutex
	running map[string]*run

	// watchMu guards watches: the groups sampled as the fleet's monitor
	// (lagwatch.go).
	watchMu sync.Mutex
	watches map[string]*watcher
}

// New validates the options and connects the admin client.
func New(opts ...Opt) (*Runtime, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.instanceID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		cfg.instanceID = hex.EncodeToString(b)
	}
	if cfg.stateDir == "" {
		cfg.stateDir = filepath.Join(os.TempDir(), "sluice-state-"+cfg.instanceID)
	}
	m, err := newMetrics(cfg.registerer)
	if err != nil {
		return nil, fmt.Errorf("runtime: metrics: %w", err)
	}
	sm, err := changelog.NewMetrics(cfg.registerer)
	if err != nil {
		return nil, fmt.Errorf("runtime: metrics: %w", err)
	}
	lm, err := observability.NewMetrics(cfg.registerer)
	if err != nil {
		return nil, fmt.Errorf("runtime: metrics: %w", err)
	}
	restorer, err := changelog.NewRestorer(changelog.Brokers(cfg.brokers...), changelog.KafkaOptions(append([]kgo.Opt{kgo.DisableClientMetrics()}, cfg.kafkaOpts...)...))
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...), kgo.DisableClientMetrics()}, cfg.kafkaOpts...)...)
	if err != nil {
		restorer.Close()
		return nil, fmt.Errorf("runtime: kafka client: %w", err)
	}
	return &Runtime{cfg: cfg, metrics: m, restoreMetrics: sm, restorer: restorer, admin: kadm.NewClient(cl), lagMetrics: lm,
		heads: newHeadReader(cfg.brokers, cfg.kafkaOpts), running: map[string]*run{}}, nil
}

// Apply makes the running set equal desired: pipelines not running start,
// pipelines whose revision changed restart on the new plan, and pipelines
// no longer desired stop (finishing in-flight work and committing). ctx
// bounds how long stopping may take.
func (r *Runtime) Apply(ctx context.Context, desired []Pipeline) error {
	want := map[string]Pipeline{}
	for _, p := range desired {
		if p.Plan == nil {
			return errors.New("runtime: pipeline without a plan")
		}
		if _, dup := want[p.Plan.Name]; dup {
			return fmt.Errorf("runtime: pipeline %q given twice", p.Plan.Name)
		}
		if err := CheckPlan(p.Plan); err != nil {
			return err
		}
		want[p.Plan.Name] = p
	}
	// One Apply at a time; r.mu is held only to read and change the map, so
	// Status (and /readyz) answers while pipelines are stopping.
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	// A new revision must be able to read its predecessor's state, or
	// say which steps start empty (`reset: true`); those are reset before
	// it starts.
	resets := map[string][]string{}
	for name, ru := range r.running {
		p, ok := want[name]
		if !ok || p.Revision == ru.p.Revision {
			continue
		}
		changes, err := pipeline.CheckState(ru.p.Plan, p.Plan)
		if err != nil {
			r.mu.Unlock()
			return err
		}
		for _, c := range changes {
			resets[name] = append(resets[name], c.Step)
		}
	}
	var stopping []*run
	for name, ru := range r.running {
		if p, ok := want[name]; !ok || p.Revision != ru.p.Revision || p.group() != ru.p.group() {
			stopping = append(stopping, ru)
			delete(r.running, name)
		}
	}
	r.mu.Unlock()
	err := stopAll(ctx, stopping)
	for _, ru := range stopping {
		if _, keep := want[ru.p.Plan.Name]; !keep {
			r.metrics.forget(ru.p.Plan.Name)
			r.restoreMetrics.Forget(ru.p.Plan.Name)
			r.lagMetrics.Forget(ru.p.Plan.Name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, p := range want {
		if _, ok := r.running[name]; ok {
			continue
		}
		ru := newRun(r, p)
		ru.resets = resets[name]
		r.running[name] = ru
		go ru.loop()
	}
	return err
}

// CheckPlan reports what in plan this runtime cannot run. Stateful steps
// keep their state in stores backed by changelog topics (see stores), so
// it survives restarts and rebalances with exactly-once; steps that read
// side inputs (joins) read them partition by partition with their stream,
// in a group whose balancer keeps co-partitioned topics together (see
// copartitionBalancer), so only the state store kind is left to check.
func CheckPlan(plan *pipeline.Plan) error {
	if plan.StateStore != "" && plan.StateStore != pipeline.StoreMemory && plan.StateStore != pipeline.StoreDisk {
		return fmt.Errorf("pipeline %s: unknown state store %q", plan.Name, plan.StateStore)
	}
	return nil
}

func stopAll(ctx context.Context, runs []*run) error {
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, ru := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ru.stop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns every pipeline's status, sorted by name.
func (r *Runtime) Status() []Status {
	r.mu.Lock()
	runs := make([]*run, 0, len(r.running))
	for _, ru := range r.running {
		runs = append(runs, ru)
	}
	r.mu.Unlock()
	out := make([]Status, 0, len(runs))
	for _, ru := range runs {
		st := ru.status()
		st.Lag = withState(ru.lagView(), st.Restores, st.Stores)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops every pipeline, finishing in-flight work, committing and
// leaving consumer groups, within ctx's deadline.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	runs := make([]*run, 0, len(r.running))
	for _, ru := range r.running {
		runs = append(runs, ru)
	}
	r.running = map[string]*run{}
	r.mu.Unlock()
	err := stopAll(ctx, runs)
	r.stopWatches()
	r.admin.Close()
	r.restorer.Close()
	r.heads.close()
	return err
}
