package runtime

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/catalog"
)

// copartitionBalancer is the group balancer of pipelines whose stages read
// side inputs (joins). A task is a partition number: partition p of a
// stage's input and partition p of each of its side inputs are processed
// together, with the stores of task p. So every member gets the same
// partition numbers of every topic it reads: members, in member-ID order,
// take the partition numbers in turn. Like the range balancer it is eager:
// a rebalance revokes everything and assigns again.
type copartitionBalancer struct{}

var _ kgo.GroupBalancer = copartitionBalancer{}

func (copartitionBalancer) ProtocolName() string { return "sluice-copartition" }
func (copartitionBalancer) IsCooperative() bool  { return false }

func (copartitionBalancer) JoinGroupMetadata(interests []string, _ map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	return meta.AppendTo(nil)
}

func (copartitionBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b copartitionBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance gives partition p of each topic to the p-th (mod n) of the n
// members reading it. Members of one revision read the same topics, so
// they get the same partition numbers of each.
func (copartitionBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	readers := map[string][]*kmsg.JoinGroupResponseMember{}
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		for _, t := range meta.Topics {
			readers[t] = append(readers[t], m)
		}
	})
	plan := cb.NewPlan()
	for topic, n := range topics {
		ms := readers[topic]
		if len(ms) == 0 {
			continue
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].MemberID < ms[j].MemberID })
		for p := range n {
			plan.AddPartition(ms[int(p)%len(ms)], topic, p)
		}
	}
	return plan
}

// tableQuiet is how long the pipeline's consumer must have fetched nothing
// at all, the table partition included, before a task takes its table as
// caught up although its position is short of the end looked up at
// assignment. The position counts transaction markers (the consumer keeps
// control records), so a table normally reaches its end exactly; this
// covers a tail the broker cannot serve any more (compacted away). It
// waits for the whole consumer to be idle, not the table partition alone:
// a partition can be left out of fetch after fetch while others fill the
// responses, and a table taken as caught up then would join the stream
// with rows missing.
const tableQuiet = time.Second

// tables holds back the stream partitions of tasks whose tables are not
// caught up (see catalog.TableInputOperator). When a task is assigned, its
// stream partition is paused; the run's goroutine looks up where each of
// the task's table partitions ends (its last stable offset) and where the
// group's committed offset is, reads the table records as they come, and
// resumes the stream partition once every table partition has reached the
// end it had at assignment, or the consumer has been idle for tableQuiet.
type tables struct {
	ru *run
	// streamOf is the stage input each side input is read with; rows
	// lists the tables (the side inputs to catch up) of each stage input.
	streamOf map[string]string
	rows     map[string][]string

	mu      sync.Mutex // the assignment callbacks run on the client's goroutines
	pending map[topicPartition]*catchUp
	busy    time.Time // when a poll last returned records, markers included
}

// catchUp is where one task's tables are.
type catchUp struct {
	assigned time.Time
	looked   bool
	end      map[string]int64 // by table: the last stable offset at lookup
	pos      map[string]int64 // by table: the offset after the last record read
	read     int64
	last     time.Time // of the lookup or the last table record
}

// newTables returns nil for a plan without side inputs.
func newTables(ru *run) *tables {
	tb := &tables{ru: ru, streamOf: map[string]string{}, rows: map[string][]string{}, pending: map[topicPartition]*catchUp{}}
	for _, st := range ru.p.Plan.Stages {
		for _, t := range st.Tables {
			tb.streamOf[t] = st.Input
		}
		for _, step := range st.Steps {
			if tin, ok := step.Operator.(catalog.TableInputOperator); ok {
				tb.rows[st.Input] = append(tb.rows[st.Input], tin.Tables()...)
			}
		}
	}
	if len(tb.streamOf) == 0 {
		return nil
	}
	return tb
}

// stream returns the stage input that side input topic is read with.
func (tb *tables) stream(topic string) (string, bool) {
	if tb == nil {
		return "", false
	}
	in, ok := tb.streamOf[topic]
	return in, ok
}

// assigned pauses the stream partitions of newly assigned tasks that have
// tables. It runs before the client fetches them.
func (tb *tables) assigned(cl *kgo.Client, m map[string][]int32) {
	pause := map[string][]int32{}
	now := time.Now()
	tb.mu.Lock()
	for input := range tb.rows {
		for _, p := range m[input] {
			tb.pending[topicPartition{input, p}] = &catchUp{assigned: now, end: map[string]int64{}, pos: map[string]int64{}}
			pause[input] = append(pause[input], p)
		}
	}
	tb.mu.Unlock()
	if len(pause) > 0 {
		cl.PauseFetchPartitions(pause)
	}
}

// revoked forgets the catch-up of revoked tasks and unpauses their stream
// partitions, which are paused again if they come back.
func (tb *tables) revoked(cl *kgo.Client, m map[string][]int32) {
	resume := map[string][]int32{}
	tb.mu.Lock()
	for input := range tb.rows {
		for _, p := range m[input] {
			delete(tb.pending, topicPartition{input, p})
			resume[input] = append(resume[input], p)
		}
	}
	tb.mu.Unlock()
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
}

// polled notes how far f read the tables of waiting tasks and resumes the
// stream of each task whose tables are caught up. It runs on the run's
// goroutine after every poll, with the control records (transaction
// markers) still in f. The lock is not held during the offset lookups, so
// a rebalance callback never waits for the network.
func (tb *tables) polled(ctx context.Context, cl *kgo.Client, f kgo.Fetches) error {
	tb.mu.Lock()
	tb.note(f, time.Now())
	if len(tb.pending) == 0 {
		tb.mu.Unlock()
		return nil
	}
	need := tb.unlooked()
	tb.mu.Unlock()

	var ends kadm.ListedOffsets
	var committed kadm.OffsetResponses
	if len(need) > 0 {
		var err error
		if ends, committed, err = tb.lookUp(ctx, need); err != nil {
			return err
		}
	}

	tb.mu.Lock()
	defer tb.mu.Unlock()
	if resume := tb.ready(ends, committed, time.Now()); len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
	return nil
}

// note takes in how far f read each waiting task's tables, counting
// transaction markers, and whether it brought anything at all; tb.mu is
// held.
func (tb *tables) note(f kgo.Fetches, now time.Time) {
	if f.NumRecords() > 0 {
		tb.busy = now
	}
	if len(tb.pending) == 0 {
		return
	}
	f.EachPartition(func(fp kgo.FetchTopicPartition) {
		input, ok := tb.streamOf[fp.Topic]
		if !ok || len(fp.Records) == 0 {
			return
		}
		c := tb.pending[topicPartition{input, fp.Partition}]
		if c == nil {
			return
		}
		c.pos[fp.Topic] = max(c.pos[fp.Topic], fp.Records[len(fp.Records)-1].Offset+1)
		for _, r := range fp.Records {
			if !r.Attrs.IsControl() {
				c.read++
			}
		}
		c.last = now
	})
}

// ready starts the waits whose lookups (ends, committed) have come, and
// returns the stream partitions of the tasks whose tables are caught up,
// which stop waiting: every table partition has reached the end it had at
// lookup, or neither it nor the consumer has brought anything for
// tableQuiet. tb.mu is held.
func (tb *tables) ready(ends kadm.ListedOffsets, committed kadm.OffsetResponses, now time.Time) map[string][]int32 {
	resume := map[string][]int32{}
	for tp, c := range tb.pending {
		if !c.looked && !tb.start(tp, c, ends, committed, now) {
			continue // assigned during the lookup: next poll
		}
		caughtUp := true
		for _, t := range tb.rows[tp.topic] {
			caughtUp = caughtUp && c.pos[t] >= c.end[t]
		}
		quiet := false
		if !caughtUp {
			quiet = now.Sub(c.last) >= tableQuiet && now.Sub(tb.busy) >= tableQuiet
		}
		if !caughtUp && !quiet {
			continue
		}
		delete(tb.pending, tp)
		resume[tp.topic] = append(resume[tp.topic], tp.partition)
		msg := "tables caught up; processing the stream"
		if quiet {
			msg = "tables quiet short of their end; processing the stream"
		}
		tb.ru.rt.cfg.logger.Info(msg, "pipeline", tb.ru.p.Plan.Name,
			"stream", tp.topic, "partition", tp.partition, "tables", tb.rows[tp.topic], "table_records", c.read,
			"took", now.Sub(c.assigned).Round(time.Millisecond))
	}
	return resume
}

// unlooked lists the tables of the tasks whose ends are not looked up yet.
func (tb *tables) unlooked() []string {
	var need []string
	seen := map[string]bool{}
	for tp, c := range tb.pending {
		if c.looked {
			continue
		}
		for _, t := range tb.rows[tp.topic] {
			if !seen[t] {
				seen[t] = true
				need = append(need, t)
			}
		}
	}
	return need
}

// lookUp finds the end (last stable offset) of each partition of tables,
// and the group's committed offsets.
func (tb *tables) lookUp(ctx context.Context, tables []string) (kadm.ListedOffsets, kadm.OffsetResponses, error) {
	adm := tb.ru.rt.admin
	ends, err := adm.ListCommittedOffsets(ctx, tables...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("looking up the end of tables %v: %w", tables, err)
	}
	committed, err := adm.FetchOffsets(ctx, tb.ru.p.group())
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("looking up the committed offsets of the tables: %w", err)
	}
	return ends, committed, nil
}

// start sets where task tp's tables end and where reading them starts: at
// the group's committed offset, so a table the group has read to its end
// needs no wait. It reports false when the lookup did not cover a table
// of the task.
func (tb *tables) start(tp topicPartition, c *catchUp, ends kadm.ListedOffsets, committed kadm.OffsetResponses, now time.Time) bool {
	for _, t := range tb.rows[tp.topic] {
		if _, ok := ends[t]; !ok {
			return false
		}
	}
	for _, t := range tb.rows[tp.topic] {
		if o, ok := ends.Lookup(t, tp.partition); ok {
			c.end[t] = o.Offset
		}
		if o, ok := committed.Lookup(t, tp.partition); ok && o.At > c.pos[t] {
			c.pos[t] = o.At
		}
	}
	c.looked, c.last = true, now
	return true
}
