package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/observability"
)

// Watch is a consumer group whose lag the runtime samples without running
// its pipeline: what the fleet's monitor runner does for every pipeline of
// its fleet, so that a pipeline no runner runs still shows its lag
// (docs/observability.md). A watch is sampled like a running pipeline's
// group (LagInterval, LagWindow, the same head reads), from the
// committed offsets alone: it has no tasks, hence no hot keys, and a
// partition is "owned" only when a live member of the group holds it.
type Watch struct {
	// Name is the pipeline's name.
	Name  string
	Group string
	// Topics are the stages' inputs in stage order. Empty: the topics
	// the group has committed offsets for, sorted, one stage each.
	Topics []string
}

// WatchStatus is a watch and its last sample.
type WatchStatus struct {
	Watch
	// Lag is nil before the first sample; its Source is "monitor".
	Lag *observability.PipelineLag
}

// watcher samples one watch until cancelled.
type watcher struct {
	w      Watch
	lt     *lagTracker
	cancel context.CancelFunc
	done   chan struct{}
}

// SetWatches makes the runtime sample exactly ws (by Name: a watch whose
// group or topics changed starts again with an empty window) until ctx
// ends, the next SetWatches or Close. Sampling runs on goroutines of its
// own; SetWatches does not wait for a sample.
func (r *Runtime) SetWatches(ctx context.Context, ws []Watch) {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watches == nil {
		r.watches = map[string]*watcher{}
	}
	keep := map[string]bool{}
	for _, w := range ws {
		keep[w.Name] = true
		if cur := r.watches[w.Name]; cur != nil {
			if cur.w.Group == w.Group && slices.Equal(cur.w.Topics, w.Topics) {
				continue
			}
			cur.stop()
		}
		r.watches[w.Name] = r.startWatch(ctx, w)
	}
	for name, cur := range r.watches {
		if !keep[name] {
			cur.stop()
			delete(r.watches, name)
		}
	}
}

// Watches returns every watch with its last sample, sorted by name.
func (r *Runtime) Watches() []WatchStatus {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	out := make([]WatchStatus, 0, len(r.watches))
	for _, wt := range r.watches {
		out = append(out, WatchStatus{Watch: wt.w, Lag: wt.lt.view()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Runtime) stopWatches() {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	for name, wt := range r.watches {
		wt.stop()
		delete(r.watches, name)
	}
}

func (wt *watcher) stop() {
	wt.cancel()
	<-wt.done
}

func (r *Runtime) startWatch(ctx context.Context, w Watch) *watcher {
	w.Topics = slices.Clone(w.Topics)
	lt := &lagTracker{cfg: r.cfg.lag.withDefaults(), group: w.Group, admin: r.admin, reader: r.heads, name: w.Name, source: observability.SourceMonitor}
	lt.init()
	for i, t := range w.Topics {
		lt.stages = append(lt.stages, lagStage{index: i, topic: t})
	}
	ctx, cancel := context.WithCancel(ctx)
	wt := &watcher{w: w, lt: lt, cancel: cancel, done: make(chan struct{})}
	log := r.cfg.logger.With("watch", w.Name, "group", w.Group)
	go func() {
		defer close(wt.done)
		if len(lt.stages) == 0 && !lt.groupTopics(ctx, log.Warn) {
			return
		}
		lt.run(ctx, log.Warn)
	}()
	return wt
}

// groupTopics makes the stages of a watch without topics from the topics
// its group committed offsets for, retrying every interval until the
// group has some or ctx ends (false).
func (lt *lagTracker) groupTopics(ctx context.Context, log func(msg string, args ...any)) bool {
	if lt.cfg.interval < 0 {
		return false // lag tracking is off
	}
	interval := lt.cfg.interval
	warned := false
	for {
		offs, err := lt.admin.FetchOffsets(ctx, lt.group)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) && !warned && ctx.Err() == nil {
			log("listing the topics of a watched group; retrying", "err", fmt.Sprint(err))
			warned = true
		}
		if err == nil && len(offs) > 0 {
			topics := make([]string, 0, len(offs))
			for t := range offs {
				topics = append(topics, t)
			}
			sort.Strings(topics)
			for i, t := range topics {
				lt.stages = append(lt.stages, lagStage{index: i, topic: t})
			}
			return true
		}
		if !sleepCtx(ctx, interval) {
			return false
		}
	}
}

// sleepCtx waits d or until ctx ends, and reports whether it waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
