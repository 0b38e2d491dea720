package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// runConfig is the command line of `runner run`: the shared Kafka and
// runtime flags, and the pipelines directory.
type runConfig struct {
	runtimeConfig
	pipelines string
	reload    time.Duration
}

// register defines run's flags on fs, writing into c.
func (c *runConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.pipelines, "pipelines", "", "directory of pipeline files (*.yaml except *_test.yaml); required")
	fs.DurationVar(&c.reload, "reload-interval", time.Second, "how often the pipelines directory is checked for changes")
	c.runtimeConfig.register(fs, ".sluice/state", "`directory` of the on-disk state of pipelines with state: {store: disk}; deleting it loses nothing (state is restored from the changelog topics)")
}

// validate checks what can be checked without touching the network.
func (c *runConfig) validate() error {
	var errs []error
	if c.pipelines == "" {
		errs = append(errs, errors.New("run needs --pipelines DIR"))
	}
	if c.reload <= 0 {
		errs = append(errs, fmt.Errorf("--reload-interval %v must be positive", c.reload))
	}
	errs = append(errs, c.runtimeConfig.validate())
	return errors.Join(errs...)
}

// runPipelines is `runner run`: it runs every pipeline under --pipelines
// until ctx ends, reloading changed files, then shuts down within
// --shutdown-timeout. stdout gets one summary line per pipeline started;
// stderr gets compile errors and the logs.
func runPipelines(ctx context.Context, c runConfig, reg *catalog.Registry, stdout, stderr io.Writer) error {
	return runDir(ctx, c, newPipelineDir(c.pipelines, reg), stdout, stderr)
}

// runDir is runPipelines on a pipelineDir made by the caller.
func runDir(ctx context.Context, c runConfig, dir *pipelineDir, stdout, stderr io.Writer) error {
	log := c.logger(stderr)

	// Compile first: a broken file should fail the start before anything
	// listens or connects.
	var first scanResult
	select {
	case first = <-scanAsync(dir):
	case <-ctx.Done():
		// A signal during a scan that hangs (a stalled network file
		// system) ends the command at once; the scan is abandoned.
		return nil
	}
	for _, m := range dir.newSkips() {
		log.Warn("skipped in the pipelines directory: "+m, "dir", c.pipelines)
	}
	if err, errs := first.err, first.errs; err != nil {
		return fmt.Errorf("--pipelines: %w", err)
	} else if len(errs) > 0 {
		for _, fe := range errs {
			for _, m := range fe.messages() {
				fmt.Fprintln(stderr, m)
			}
		}
		return errFailed
	}

	return withRuntime(ctx, &c.runtimeConfig, log, func(ctx context.Context, k *kafkaRuntime) error {
		r := &reloader{dir: dir, rt: k.rt, log: log, out: stdout, applyTimeout: c.shutdown, applied: map[string]string{}, createInputs: k.createInputs}
		r.apply(ctx)

		t := time.NewTicker(c.reload)
		defer t.Stop()
		// Scans run on their own goroutine, one at a time, so that a
		// signal is never kept waiting by one; the loop alone touches dir
		// between them.
		var scanned <-chan scanResult
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if scanned == nil {
					scanned = scanAsync(dir)
				}
			case res := <-scanned:
				scanned = nil
				for _, m := range dir.newSkips() {
					log.Warn("skipped in the pipelines directory: "+m, "dir", c.pipelines)
				}
				changed, errs, resets, err := res.changed, res.errs, res.resets, res.err
				if err != nil {
					log.Error("reading the pipelines directory", "dir", c.pipelines, "err", err)
					continue
				}
				for _, fe := range errs {
					prev := "no previous revision"
					if pf := dir.files[fe.file]; pf != nil && pf.good != nil {
						prev = "previous revision " + pf.good.Revision + " keeps running"
					}
					for _, m := range fe.messages() {
						log.Error("pipeline file not applied; "+prev, "file", fe.file, "err", m)
					}
				}
				for _, m := range resets {
					log.Warn(m)
				}
				if changed {
					r.apply(ctx)
				}
			}
		}
	})
}

// scanResult is what pipelineDir.scan returned.
type scanResult struct {
	changed bool
	errs    []fileError
	resets  []string
	err     error
}

// scanAsync scans dir on a goroutine of its own and sends the result.
func scanAsync(dir *pipelineDir) <-chan scanResult {
	ch := make(chan scanResult, 1)
	go func() {
		var r scanResult
		r.changed, r.errs, r.resets, r.err = dir.scan()
		ch <- r
	}()
	return ch
}

// reloader applies the directory's good revisions to the runtime and
// reports what changed.
type reloader struct {
	dir          *pipelineDir
	rt           *runtime.Runtime
	log          *slog.Logger
	out          io.Writer
	applyTimeout time.Duration
	// applied maps pipeline name to the revision last applied.
	applied map[string]string
	// createInputs, when set, creates missing input topics first (the
	// embedded cluster, where nothing else would create them).
	createInputs func(context.Context, []*pipeline.Plan) error
}

func (r *reloader) apply(ctx context.Context) {
	desired := r.dir.desired()
	// Stopping a changed pipeline finishes its in-flight work; give it the
	// shutdown timeout even when a signal arrives meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.applyTimeout)
	defer cancel()
	if r.createInputs != nil {
		var plans []*pipeline.Plan
		for _, p := range desired {
			if r.applied[p.Plan.Name] != p.Revision {
				plans = append(plans, p.Plan)
			}
		}
		if err := r.createInputs(actx, plans); err != nil {
			r.log.Warn("creating input topics on the embedded cluster", "err", err)
		}
	}
	if err := r.rt.Apply(actx, desired); err != nil {
		r.log.Error("applying pipelines", "err", err)
	}
	next := map[string]string{}
	for _, p := range desired {
		next[p.Plan.Name] = p.Revision
		switch prev, ok := r.applied[p.Plan.Name]; {
		case !ok:
			fmt.Fprintln(r.out, summary(p))
			r.log.Info("pipeline started", "pipeline", p.Plan.Name, "revision", p.Revision, "file", p.Plan.File)
		case prev != p.Revision:
			fmt.Fprintln(r.out, summary(p))
			r.log.Info("pipeline updated", "pipeline", p.Plan.Name, "revision", p.Revision, "previous", prev, "file", p.Plan.File)
		}
	}
	for name, rev := range r.applied {
		if _, ok := next[name]; !ok {
			fmt.Fprintf(r.out, "pipeline %s (rev %s): removed\n", name, rev)
			r.log.Info("pipeline removed", "pipeline", name, "revision", rev)
		}
	}
	r.applied = next
}
