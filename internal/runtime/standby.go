package runtime

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/changelog"
)

// standbyEvery is how often a runner catches its standby stores up.
const standbyEvery = 2 * time.Second

// warmStore is a standby copy of a task's store, for a partition another
// runner holds.
type warmStore struct {
	input string
	base  state.Committer
}

// keepWarm maintains this runner's standby stores (`state.standbys: n`):
// for each partition of a stateful stage held by another member of the
// group, the n members after the holder (in member-ID order, wrapping)
// keep a copy of its stores, caught up from the changelog every
// standbyEvery. A runner that is then assigned the partition adopts its
// copy (ensure) and restores only the changelog's tail; a runner that
// loses a partition keeps its stores as a standby copy until it is not one
// of the partition's standbys. It runs on the run goroutine between
// transactions; an unstable group (a rebalance going on) is left for the
// next round.
func (s *stores) keepWarm(ctx context.Context, cl *kgo.Client) error {
	// Between transactions, with nothing polled: the sizes of a pipeline
	// that went quiet after its last commit are measured here.
	s.measure(time.Now())
	n := s.ru.p.Plan.Standbys
	if n <= 0 || time.Since(s.warmedAt) < standbyEvery {
		return nil
	}
	s.warmedAt = time.Now()
	self, _ := cl.GroupMetadata()
	if self == "" {
		return nil
	}
	groups, err := s.ru.rt.admin.DescribeGroups(ctx, s.ru.p.group())
	if err != nil {
		return fmt.Errorf("standbys: describing the group: %w", err)
	}
	g, ok := groups[s.ru.p.group()]
	if !ok || g.Err != nil || g.State != "Stable" {
		return nil
	}
	var members []string
	owner := map[topicPartition]string{}
	for _, m := range g.Members {
		members = append(members, m.MemberID)
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					owner[topicPartition{t.Topic, p}] = m.MemberID
				}
			}
		}
	}
	slices.Sort(members)
	want := map[storeID]string{} // the stores to keep warm, with their stage input
	for tp, o := range owner {
		steps, stateful := s.steps[tp.topic]
		if !stateful || o == self || s.ru.epoch(tp.topic, tp.partition) != 0 {
			continue
		}
		i := slices.Index(members, o)
		for k := 1; k <= n && k < len(members); k++ {
			if members[(i+k)%len(members)] == self {
				for _, step := range steps {
					want[storeID{step, tp.partition}] = tp.topic
				}
			}
		}
	}
	for id, w := range s.warm {
		if _, ok := want[id]; !ok {
			s.dropWarm(id, w)
		}
	}
	for id, input := range want {
		if err := s.warmUp(ctx, id, input); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// warmUp opens the standby copy of store id if needed and catches it up
// from its checkpoint to the changelog's end.
func (s *stores) warmUp(ctx context.Context, id storeID, input string) error {
	w := s.warm[id]
	if w == nil {
		base, err := s.openBase(id.step, id.partition)
		if err != nil {
			return fmt.Errorf("standbys: opening step %s, partition %d: %w", id.step, id.partition, err)
		}
		w = &warmStore{input: input, base: base}
		s.warm[id] = w
	}
	_, err := s.ru.rt.restorer.Restore(ctx, ChangelogTopic(s.ru.p.Plan.Name, id.step), id.partition, w.base.Checkpoint().Offset(id.partition), w.base, func(p changelog.Progress) {
		s.mu.Lock()
		s.warmProgress[id] = p
		s.mu.Unlock()
	})
	if err != nil {
		return fmt.Errorf("standbys: catching up step %s, partition %d: %w", id.step, id.partition, err)
	}
	return nil
}

// adoptWarm hands over the standby copy of store id, if there is one, to
// become the task's store.
func (s *stores) adoptWarm(id storeID) state.Committer {
	w := s.warm[id]
	if w == nil {
		return nil
	}
	delete(s.warm, id)
	s.mu.Lock()
	delete(s.warmProgress, id)
	s.mu.Unlock()
	return w.base
}

func (s *stores) dropWarm(id storeID, w *warmStore) {
	if err := w.base.Close(); err != nil {
		s.ru.rt.cfg.logger.Warn("closing a standby store", "pipeline", s.ru.p.Plan.Name, "step", id.step, "partition", id.partition, "err", err)
	}
	delete(s.warm, id)
	s.mu.Lock()
	delete(s.warmProgress, id)
	s.mu.Unlock()
}
