// Package agent is the managed mode of the runner (`runner agent`): it
// registers with the control plane, long-polls its fleet's desired state,
// runs the assigned pipeline revisions on a runtime.Runtime and reports
// their status, speaking agentproto over outbound HTTPS only (DESIGN.md §1).
//
// # Static stability
//
// Everything the agent needs to keep its pipelines running lives in its
// data directory:
//
//	DIR/credential.json   runner credential and ids (0600), from registration
//	DIR/assignments.json  the assignments as applied, with their generation
//	DIR/bundles/<digest>  each applied bundle, by SHA-256
//
// At start the agent applies the cached assignments before it contacts the
// control plane, so a runner restarted while the control plane (or its
// database) is down resumes its pipelines. While the control plane is
// unreachable nothing changes: the pipelines run on, the agent retries with
// jittered back-off. A 401 on the credential is logged as such, and the
// pipelines run on as well.
//
// The cache holds what runs, not what was asked for: when an assignment's
// bundle is refused (its bytes do not match the digest, it does not
// compile, it cannot take over its predecessor's state), the pipeline's
// previous good revision keeps running and stays in the cache, and the
// refusal is reported in every StatusReport until a new generation
// resolves it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Agent runs a runner's assigned pipelines. Create it with New and run it
// with Run.
type Agent struct {
	cfg    config
	dir    dataDir
	client *client
	log    *slog.Logger

	// mu guards what status reports and State read while the poll loop
	// applies.
	mu         sync.Mutex
	cred       *credential
	generation int64
	running    map[string]*entry
	errors     []string
	cached     bool
	lastErr    error
	// monitoring is how many groups the agent watches as its fleet's
	// monitor (0: it is not the monitor).
	monitoring int

	dlq    *dlqReader
	replay *replayer
	keys   *keyFinder
}

// entry is one pipeline as it runs: the assignment it came from and what
// the runtime was given.
type entry struct {
	a agentproto.Assignment
	p runtime.Pipeline
}

// ErrNoCredential means the data directory holds no credential and no
// bootstrap token was given to register with.
var ErrNoCredential = errors.New("agent: the data directory holds no runner credential and no bootstrap token was given")

// New validates the options. It touches nothing but the data directory,
// which it creates and checks for a credential.
func New(opts ...Opt) (*Agent, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir := dataDir(cfg.dataDir)
	if err := dir.prepare(); err != nil {
		return nil, &ConfigError{Option: "DataDir", Err: err}
	}
	if cfg.bootstrapToken == "" && !dir.hasCredential() {
		return nil, fmt.Errorf("%w (%s)", ErrNoCredential, dir.path(credentialFile))
	}
	a := &Agent{
		cfg:     cfg,
		dir:     dir,
		client:  &client{base: cfg.controlPlane, http: cfg.httpClient},
		log:     cfg.logger,
		running: map[string]*entry{},
		dlq:     newDLQReader(cfg.kafka),
		keys:    newKeyFinder(cfg.kafka),
	}
	a.replay = newReplayer(dir, cfg.kafka, a.log.Info)
	return a, nil
}

// State is a snapshot of the agent, for tests and diagnostics.
type State struct {
	RunnerID, FleetID string
	// Generation is the generation of the assignments last applied.
	Generation int64
	// Revisions maps each running pipeline to its revision label.
	Revisions map[string]string
	// Errors are the assignment-level problems of the last apply, as
	// reported.
	Errors []string
	// Cached is true while the agent runs from its cache because it has
	// not reached the control plane since it started.
	Cached bool
	// Err is the last failure talking to the control plane, nil after a
	// success; errors.Is(Err, ErrCredentialRefused) when the credential
	// is dead.
	Err error
}

// State returns a snapshot of the agent.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := State{Generation: a.generation, Errors: append([]string(nil), a.errors...), Cached: a.cached, Err: a.lastErr, Revisions: map[string]string{}}
	if a.cred != nil {
		s.RunnerID, s.FleetID = a.cred.RunnerID, a.cred.FleetID
	}
	for name, e := range a.running {
		s.Revisions[name] = e.p.Revision
	}
	return s
}

// Run applies the cached assignments, registers if it must, then follows
// the control plane's assignments and reports status until ctx ends, when
// it returns nil. It leaves the pipelines running: stopping them is the
// runtime's Close. It returns an error only when it cannot go on at all: a
// registration refused with nothing cached to run, or a credential that
// cannot be saved.
func (a *Agent) Run(ctx context.Context) error {
	defer a.dlq.stop()
	a.startFromCache(ctx)

	cred, err := a.credential(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		a.setErr(err)
		if len(a.State().Revisions) == 0 {
			return err
		}
		a.log.Error("cannot reach the control plane as a registered runner; the cached pipelines keep running", "err", err)
		<-ctx.Done()
		return nil
	}
	a.mu.Lock()
	a.cred = cred
	a.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.heartbeat(ctx)
	}()
	go func() {
		defer wg.Done()
		a.replay.run(ctx)
	}()
	a.follow(ctx)
	return nil
}

// startFromCache applies the cached assignments, before the control plane
// is asked anything, so that an unreachable one does not keep pipelines
// down.
func (a *Agent) startFromCache(ctx context.Context) {
	as, err := a.dir.loadAssignments()
	if err != nil {
		a.log.Error("the cached assignments are unreadable; starting without them", "err", err)
		return
	}
	if as == nil {
		return
	}
	a.log.Info("applying the cached assignments before contacting the control plane", "generation", as.Generation, "pipelines", len(as.Pipelines))
	a.apply(ctx, as, false)
	a.mu.Lock()
	a.cached = true
	a.mu.Unlock()
}

// credential returns the saved credential, or registers with the
// bootstrap token and saves the answer, retrying what may pass.
func (a *Agent) credential(ctx context.Context) (*credential, error) {
	c, err := a.dir.loadCredential()
	if err != nil {
		return nil, err
	}
	if c != nil {
		if c.ControlPlane != "" && c.ControlPlane != a.cfg.controlPlane {
			a.log.Warn("the saved credential was issued by another control plane URL; using it anyway", "saved", c.ControlPlane, "now", a.cfg.controlPlane)
		}
		a.log.Info("using the saved runner credential", "runner", c.RunnerID, "fleet", c.FleetID)
		return c, nil
	}
	if a.cfg.bootstrapToken == "" {
		return nil, ErrNoCredential
	}
	bo := a.backoff()
	for {
		resp, err := a.client.register(ctx, a.cfg.bootstrapToken, agentproto.RegisterRequest{Name: a.cfg.name, Version: a.cfg.version})
		if err == nil {
			c := &credential{RunnerID: resp.RunnerID, FleetID: resp.FleetID, Credential: resp.Credential, ControlPlane: a.cfg.controlPlane}
			if err := a.dir.saveCredential(c); err != nil {
				// The bootstrap token is spent: say plainly that the
				// runner has to be registered anew.
				return nil, fmt.Errorf("registered as runner %s but could not save the credential (register again with a new bootstrap token): %w", c.RunnerID, err)
			}
			a.log.Info("registered with the control plane", "runner", c.RunnerID, "fleet", c.FleetID, "credential_file", a.dir.path(credentialFile))
			a.setErr(nil)
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !temporary(err) {
			return nil, err
		}
		a.setErr(err)
		d := bo.next()
		a.log.Warn("registration failed; retrying", "err", err, "retry_in", d.Round(time.Millisecond).String())
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// follow long-polls the assignments and applies each new generation until
// ctx ends.
func (a *Agent) follow(ctx context.Context) {
	bo := a.backoff()
	// The first poll asks for generation 0, which the control plane always
	// answers at once: after a restart the agent learns the current
	// desired state, clears Cached and reports it without waiting out a
	// long-poll, and bundles refused before the restart are tried (and
	// reported) again.
	var settled int64
	first := true
	for ctx.Err() == nil {
		start := time.Now()
		as, err := a.client.poll(ctx, a.cred.Credential, settled, a.cfg.pollWait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.setErr(err)
			d := bo.next()
			if errors.Is(err, ErrCredentialRefused) {
				d = bo.max()
			}
			sleep(ctx, d)
			continue
		}
		a.setErr(nil)
		a.mu.Lock()
		a.cached = false
		a.mu.Unlock()
		// The monitor role comes with every answer, not with a
		// generation: it changes when runners come and go.
		a.setMonitor(ctx, as.Monitor)
		a.replay.set(as.Replays)
		if as.Generation == settled && !first {
			bo.reset()
			// A control plane that answers an unchanged generation at
			// once (not holding the poll) must not make this spin.
			if time.Since(start) < a.cfg.backoffMin {
				sleep(ctx, a.cfg.backoffMin)
			}
			continue
		}
		first = false
		done := a.apply(ctx, as, true)
		a.report(ctx)
		if done {
			settled = as.Generation
			bo.reset()
			continue
		}
		// A bundle could not be fetched for now: polling with the old
		// generation brings the same assignments back at once, after the
		// back-off.
		sleep(ctx, bo.next())
	}
}

// apply makes the runtime run as, as far as its bundles allow, and
// records the outcome. fetch says whether missing bundles may be
// downloaded; without it (at start, from the cache) they are reported.
// It returns false when a bundle failed for a reason that may pass, so
// the generation should be tried again.
func (a *Agent) apply(ctx context.Context, as *agentproto.Assignments, fetch bool) (settled bool) {
	settled = true
	a.mu.Lock()
	prev := a.running
	a.mu.Unlock()

	var errs []string
	next := map[string]*entry{}
	var changed []*pipeline.Plan
	for _, asg := range as.Pipelines {
		old := prev[asg.Name]
		if _, dup := next[asg.Name]; dup {
			errs = append(errs, fmt.Sprintf("pipeline %s is assigned twice; the first assignment is used", asg.Name))
			continue
		}
		if old != nil && old.a.Digest == asg.Digest && old.p.Revision == asg.RevisionLabel() && old.p.Group == asg.Group {
			next[asg.Name] = &entry{a: asg, p: old.p}
			continue
		}
		e, err := a.prepare(ctx, asg, old, fetch)
		if err != nil {
			if fetch && temporary(err) {
				settled = false
			}
			msg := fmt.Sprintf("pipeline %s revision %s not applied: %v", asg.Name, asg.RevisionLabel(), err)
			if old != nil {
				msg += "; revision " + old.p.Revision + " keeps running"
				next[asg.Name] = old
			}
			errs = append(errs, msg)
			a.log.Error("assignment not applied", "pipeline", asg.Name, "revision", asg.RevisionLabel(), "err", err, "running", revisionOf(old))
			continue
		}
		next[asg.Name] = e
		changed = append(changed, e.p.Plan)
	}

	desired := make([]runtime.Pipeline, 0, len(next))
	for _, e := range next {
		desired = append(desired, e.p)
	}
	sort.Slice(desired, func(i, j int) bool { return desired[i].Plan.Name < desired[j].Plan.Name })
	// Stopping a replaced pipeline finishes its in-flight work; it gets the
	// apply timeout even when ctx ends meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.applyTimeout)
	defer cancel()
	if a.cfg.prepareInputs != nil && len(changed) > 0 {
		if err := a.cfg.prepareInputs(actx, changed); err != nil {
			a.log.Warn("preparing input topics", "err", err)
		}
	}
	// The runtime checks what prepare already checked (plans, state
	// compatibility), so an error here is a pipeline that did not stop in
	// time; the new set is in place all the same.
	if err := a.cfg.runtime.Apply(actx, desired); err != nil {
		errs = append(errs, "applying: "+err.Error())
		a.log.Error("applying pipelines", "err", err)
	}
	for name, e := range next {
		switch old := prev[name]; {
		case old == nil:
			a.log.Info("pipeline started", "pipeline", name, "revision", e.p.Revision, "commit", e.a.Commit)
		case old.p.Revision != e.p.Revision:
			a.log.Info("pipeline updated", "pipeline", name, "revision", e.p.Revision, "previous", old.p.Revision, "commit", e.a.Commit)
		}
	}
	for name, old := range prev {
		if _, ok := next[name]; !ok {
			a.log.Info("pipeline removed", "pipeline", name, "revision", old.p.Revision)
		}
	}

	a.mu.Lock()
	a.running = next
	a.generation = as.Generation
	a.errors = errs
	a.mu.Unlock()
	if len(a.cfg.kafka) > 0 {
		var dlqs []string
		for _, e := range next {
			dlqs = append(dlqs, e.p.Plan.DLQ)
		}
		a.dlq.set(ctx, dlqs, a.log.Warn)
	}

	if fetch {
		a.saveCache(as.Generation, next)
	}
	return settled
}

// saveCache records what runs, so a restart resumes it, and drops the
// bundles nothing runs any more.
func (a *Agent) saveCache(gen int64, running map[string]*entry) {
	cache := &agentproto.Assignments{Generation: gen, Pipelines: []agentproto.Assignment{}}
	keep := map[string]bool{}
	for _, e := range running {
		cache.Pipelines = append(cache.Pipelines, e.a)
		keep[e.a.Digest] = true
	}
	sort.Slice(cache.Pipelines, func(i, j int) bool { return cache.Pipelines[i].Name < cache.Pipelines[j].Name })
	if err := a.dir.saveAssignments(cache); err != nil {
		a.log.Error("caching the assignments; a restart without the control plane would run the previous ones", "err", err)
		return
	}
	if err := a.dir.pruneBundles(keep); err != nil {
		a.log.Warn("removing unused bundles from the cache", "err", err)
	}
}

// prepare turns an assignment into a pipeline the runtime can run: the
// bundle (cached, or downloaded when fetch), verified against its digest,
// compiled, checked against the runtime and against the state of the
// revision it replaces.
func (a *Agent) prepare(ctx context.Context, asg agentproto.Assignment, old *entry, fetch bool) (*entry, error) {
	if !validDigest(asg.Digest) {
		return nil, fmt.Errorf("digest %q is not a hex SHA-256", asg.Digest)
	}
	b, err := a.bundle(ctx, asg.Digest, fetch)
	if err != nil {
		return nil, err
	}
	if b.Pipeline != asg.Name {
		return nil, fmt.Errorf("bundle %s holds pipeline %q", asg.Digest, b.Pipeline)
	}
	c := &pipeline.Compiler{Registry: a.cfg.registry, Files: b.FS()}
	plan, err := c.Compile(b.Path, b.Source())
	if err != nil {
		return nil, err
	}
	if plan.Name != asg.Name {
		return nil, fmt.Errorf("%s defines pipeline %q", b.Path, plan.Name)
	}
	if err := runtime.CheckPlan(plan); err != nil {
		return nil, err
	}
	if old != nil {
		resets, err := pipeline.CheckState(old.p.Plan, plan)
		if err != nil {
			return nil, err
		}
		for _, r := range resets {
			a.log.Warn("the state of a step starts empty", "pipeline", plan.Name, "step", r.Step, "reason", r.Reason)
		}
	}
	return &entry{a: asg, p: runtime.Pipeline{Plan: plan, Revision: asg.RevisionLabel(), Group: asg.Group}}, nil
}

// bundle returns the verified bundle of digest, from the cache or, when
// fetch, downloaded and cached. A cached copy that fails verification is
// dropped and, when fetch, downloaded again.
func (a *Agent) bundle(ctx context.Context, digest string, fetch bool) (*agentproto.Bundle, error) {
	data, err := a.dir.loadBundle(digest)
	if err != nil {
		a.log.Warn("reading a cached bundle", "digest", digest, "err", err)
	}
	if data != nil {
		b, err := agentproto.DecodeBundle(data, digest)
		if err == nil {
			return b, nil
		}
		a.log.Warn("dropping a cached bundle that fails verification", "digest", digest, "err", err)
		_ = a.dir.removeBundle(digest)
	}
	if !fetch {
		return nil, fmt.Errorf("bundle %s is not in the cache", digest)
	}
	a.mu.Lock()
	cred := a.cred.Credential
	a.mu.Unlock()
	data, err = a.client.bundle(ctx, cred, digest)
	if err != nil {
		return nil, err
	}
	b, err := agentproto.DecodeBundle(data, digest)
	if err != nil {
		return nil, err
	}
	if err := a.dir.saveBundle(digest, data); err != nil {
		// It runs all the same; only a restart without the control
		// plane would miss it.
		a.log.Error("caching a bundle", "digest", digest, "err", err)
	}
	return b, nil
}

// heartbeat posts a status report every heartbeat interval until ctx
// ends.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.report(ctx)
		}
	}
}

// report posts what runs now. A failure is only noted: the next heartbeat
// tries again.
func (a *Agent) report(ctx context.Context) {
	a.mu.Lock()
	rep := &agentproto.StatusReport{
		Generation: a.generation,
		Version:    a.cfg.version,
		Pipelines:  []agentproto.PipelineStatus{},
		Errors:     append([]string(nil), a.errors...),
		Cached:     a.cached,
	}
	digests := map[string]string{}
	previews := map[string]*agentproto.RecordPreviews{}
	dlqs := map[string]string{}
	for name, e := range a.running {
		digests[name] = e.a.Digest
		previews[name] = effectivePreviews(e.a.Previews)
		dlqs[name] = e.p.Plan.DLQ
	}
	cred := a.cred.Credential
	a.mu.Unlock()
	for _, s := range a.cfg.runtime.Status() {
		parts := s.Partitions
		if parts == nil {
			parts = []int32{}
		}
		rep.Pipelines = append(rep.Pipelines, agentproto.PipelineStatus{
			Name:       s.Name,
			Digest:     digests[s.Name],
			State:      string(s.State),
			Error:      s.Error,
			Restarts:   s.Restarts,
			Partitions: parts,
			Processed:  s.Processed,
			DeadLetter: s.DeadLetter,
			Since:      s.Since,
			Lag:        s.Lag.ForReport(),
		})
		ps := &rep.Pipelines[len(rep.Pipelines)-1]
		// Record previews are decided here, per pipeline, from its
		// project's setting: off, nothing of a key or value is in ps.
		if topic, ok := dlqs[s.Name]; ok {
			ps.DLQ = a.dlq.view(topic, previews[s.Name])
		}
		if p := previews[s.Name]; p != nil && ps.Lag != nil && len(ps.Lag.HotKeys) > 0 {
			for hash, key := range a.keys.lookup(ctx, ps.Lag.HotKeys) {
				if pv := keyPreviewOf(key, p); pv != nil {
					if ps.KeyPreviews == nil {
						ps.KeyPreviews = map[string]agentproto.Preview{}
					}
					ps.KeyPreviews[hash] = *pv
				}
			}
		}
	}
	rep.Replays = a.replay.report()
	for _, w := range a.cfg.runtime.Watches() {
		rep.Monitor = append(rep.Monitor, agentproto.MonitoredLag{Name: w.Name, Group: w.Group, Lag: w.Lag.ForReport()})
	}
	fitLag(rep)
	fitDLQ(rep)
	if err := a.client.status(ctx, cred, rep); err != nil && ctx.Err() == nil {
		a.setErr(err)
	}
}

// setMonitor makes the runtime watch the groups of ws (none: the agent is
// not its fleet's monitor, or no longer), and logs when the role changes.
func (a *Agent) setMonitor(ctx context.Context, ws []agentproto.Watch) {
	watches := make([]runtime.Watch, 0, len(ws))
	for _, w := range ws {
		watches = append(watches, runtime.Watch{Name: w.Name, Group: w.Group, Topics: w.Topics})
	}
	a.cfg.runtime.SetWatches(ctx, watches)
	a.mu.Lock()
	prev := a.monitoring
	a.monitoring = len(ws)
	a.mu.Unlock()
	switch {
	case prev == 0 && len(ws) > 0:
		a.log.Info("this runner is its fleet's monitor: it samples the lag of every pipeline of the fleet", "pipelines", len(ws))
	case prev > 0 && len(ws) == 0:
		a.log.Info("this runner is no longer its fleet's monitor")
	}
}

// setErr records the outcome of a call to the control plane and logs
// changes of it, once each: a control plane down for an hour is one
// warning, not one per retry.
func (a *Agent) setErr(err error) {
	a.mu.Lock()
	prev := a.lastErr
	a.lastErr = err
	n := len(a.running)
	a.mu.Unlock()
	switch {
	case err == nil && prev != nil:
		a.log.Info("the control plane is reachable again")
	case err == nil:
	case errors.Is(err, ErrCredentialRefused):
		if !errors.Is(prev, ErrCredentialRefused) {
			a.log.Error("the control plane refused this runner's credential (401): it was revoked or the runner deleted; "+
				"the applied pipelines keep running and are no longer updated; to register again, delete the credential file and start with a new bootstrap token",
				"pipelines", n, "credential_file", a.dir.path(credentialFile))
		}
	case prev == nil || prev.Error() != err.Error():
		a.log.Warn("the control plane is unreachable or failing; the applied pipelines keep running", "err", err, "pipelines", n)
	default:
		a.log.Debug("the control plane is still unreachable", "err", err)
	}
}

func revisionOf(e *entry) string {
	if e == nil {
		return "none"
	}
	return e.p.Revision
}

// backoff is a jittered exponential back-off.
type backoff struct {
	min, ceil time.Duration
	cur       time.Duration
}

func (a *Agent) backoff() *backoff { return &backoff{min: a.cfg.backoffMin, ceil: a.cfg.backoffMax} }

// next doubles the delay up to the ceiling and returns it with jitter
// (between half and all of it), so runners that lost the control plane
// together do not come back in step.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.ceil {
		b.cur = b.ceil
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) max() time.Duration { return b.ceil/2 + rand.N(b.ceil/2+1) }

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
