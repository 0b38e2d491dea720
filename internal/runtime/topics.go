package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/internal/pipeline"
)

// CopartitionError says that topics a task reads together do not have the
// same partition count. It needs a person: a topic's partitions must be
// changed (or the step given a repartition), and retrying will not help
// until then.
type CopartitionError struct {
	Stage  int
	Counts map[string]int32 // partition count by topic
}

func (e *CopartitionError) Error() string {
	topics := make([]string, 0, len(e.Counts))
	for t := range e.Counts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	parts := make([]string, len(topics))
	for i, t := range topics {
		parts[i] = fmt.Sprintf("%s has %d", t, e.Counts[t])
	}
	return fmt.Sprintf("stage %d reads topics partition by partition together, so they need the same partition count, but %s partitions", e.Stage, strings.Join(parts, ", "))
}

// ensureTopics checks that the source and side inputs exist and creates
// the topics the pipeline writes. A stage's input and its side inputs are
// co-partitioned (partition p of each is task p): a repartition topic gets
// the partition count of the side inputs of the stage that reads it, or
// else the source's, and a stateful step's changelog the count of its
// stage's input, one changelog partition per task.
func (rt *Runtime) ensureTopics(ctx context.Context, plan *pipeline.Plan) error {
	counts, err := rt.partitionCounts(ctx, plan)
	if err != nil {
		return err
	}
	// stageParts is the partition count of each stage's input.
	stageParts := make([]int32, len(plan.Stages))
	repart := map[string]int32{}
	for i, st := range plan.Stages {
		n := counts[plan.Source.Topic]
		if i > 0 {
			if len(st.Tables) > 0 {
				n = counts[st.Tables[0]]
			}
			repart[st.Input] = n
		}
		stageParts[i] = n
	}
	// Create only what is missing: a principal without the right to
	// create topics runs pipelines whose topics were created beforehand,
	// and a start costs no CreateTopics request.
	exists, err := rt.existingTopics(ctx, writtenTopics(plan))
	if err != nil {
		return err
	}
	create := func(topic string, n int32, configs map[string]*string) error {
		if exists[topic] {
			return nil
		}
		return rt.createTopic(ctx, topic, n, configs)
	}
	for i, st := range plan.Stages {
		if i > 0 {
			if err := create(st.Input, stageParts[i], nil); err != nil {
				return err
			}
		}
		if len(st.Tables) > 0 {
			// The input may exist from before with another count: a
			// repartition topic keeps the count it was created with.
			got := stageParts[i]
			if i > 0 {
				if got, err = rt.partitionCount(ctx, st.Input); err != nil {
					return err
				}
			}
			c := map[string]int32{st.Input: got}
			same := true
			for _, t := range st.Tables {
				c[t] = counts[t]
				same = same && counts[t] == got
			}
			if !same {
				return &CopartitionError{Stage: st.Index, Counts: c}
			}
		}
		for _, step := range st.Steps {
			if !step.Stateful {
				continue
			}
			// Compacted: a restore reads the last value of every key.
			if err := create(ChangelogTopic(plan.Name, step.Name), stageParts[i], map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}); err != nil {
				return err
			}
		}
	}
	for _, t := range plan.Topics() {
		if _, ok := repart[t]; ok {
			continue
		}
		n := counts[plan.Source.Topic]
		if rt.cfg.partitions > 0 {
			n = rt.cfg.partitions
		}
		if err := create(t, n, nil); err != nil {
			return err
		}
	}
	return nil
}

// writtenTopics lists every topic the plan writes: outputs, the DLQ,
// repartition topics and changelogs.
func writtenTopics(plan *pipeline.Plan) []string {
	out := plan.Topics() // repartition topics included
	for _, st := range plan.Stages {
		for _, step := range st.Steps {
			if step.Stateful {
				out = append(out, ChangelogTopic(plan.Name, step.Name))
			}
		}
	}
	return out
}

// existingTopics reports which of topics exist and can be described. It
// asks the cluster, not the admin client's metadata cache (which the
// request refreshes): kadm's cached lookups would otherwise answer from
// before a topic was created. A topic that may not be described fails
// the whole lookup; then none counts as existing, and creating them
// says what is wrong.
func (rt *Runtime) existingTopics(ctx context.Context, topics []string) (map[string]bool, error) {
	out := map[string]bool{}
	td, err := rt.admin.ListTopics(kadm.WithAuthorizedOps(ctx), topics...)
	if errors.Is(err, kerr.TopicAuthorizationFailed) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", strings.Join(topics, ", "), err)
	}
	for _, t := range topics {
		if d, ok := td[t]; ok && d.Err == nil {
			out[t] = true
		}
	}
	return out, nil
}

// partitionCounts looks up the partition counts of the topics the plan
// reads but does not write: the source and the side inputs. One that does
// not exist yet is waited for.
func (rt *Runtime) partitionCounts(ctx context.Context, plan *pipeline.Plan) (map[string]int32, error) {
	topics := []string{plan.Source.Topic}
	for _, st := range plan.Stages {
		topics = append(topics, st.Tables...)
	}
	td, err := rt.admin.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", strings.Join(topics, ", "), err)
	}
	counts := map[string]int32{}
	for _, t := range topics {
		d, ok := td[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			what := "input"
			if t != plan.Source.Topic {
				what = "side input"
			}
			return nil, &WaitError{Err: fmt.Errorf("%s topic %s does not exist yet", what, t)}
		}
		if d.Err != nil {
			return nil, fmt.Errorf("looking up %s: %w", t, d.Err)
		}
		counts[t] = int32(len(d.Partitions))
	}
	return counts, nil
}

// partitionCount is the partition count of an existing topic.
func (rt *Runtime) partitionCount(ctx context.Context, topic string) (int32, error) {
	td, err := rt.admin.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("looking up %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return 0, fmt.Errorf("looking up %s: %w", topic, errors.Join(d.Err, errors.New("not found")))
	}
	return int32(len(d.Partitions)), nil
}

// createTopic creates topic with n partitions unless it exists.
func (rt *Runtime) createTopic(ctx context.Context, topic string, n int32, configs map[string]*string) error {
	resp, err := rt.admin.CreateTopics(ctx, n, rt.cfg.replication, configs, topic)
	if err != nil {
		return fmt.Errorf("creating %s: %w", topic, err)
	}
	for _, r := range resp {
		switch {
		case r.Err == nil:
			// Refresh the metadata cache, which may remember the topic
			// as missing from the lookup before.
			_, _ = rt.existingTopics(ctx, []string{topic})
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		case errors.Is(r.Err, kerr.TopicAuthorizationFailed), errors.Is(r.Err, kerr.ClusterAuthorizationFailed):
			// Someone may have created it since it was looked up.
			if exists, lerr := rt.existingTopics(ctx, []string{topic}); lerr == nil && exists[topic] {
				return nil
			}
			return fmt.Errorf("topic %s does not exist, and this runner's Kafka principal may not create it (%w): create the topic, or allow the principal to create it", topic, r.Err)
		default:
			return fmt.Errorf("creating %s: %w", topic, r.Err)
		}
	}
	return nil
}
