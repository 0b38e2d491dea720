package runtime

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/pipeline"
)

// tablesOn returns the tables of a pipeline that joins stream "orders"
// with table "customers", logging into log, with the given tasks waiting:
// their ends looked up (end of customers, per partition) and nothing read
// yet, at start.
func tablesOn(log *bytes.Buffer, start time.Time, ends map[int32]int64) *tables {
	ru := &run{
		rt: &Runtime{cfg: config{logger: slog.New(slog.NewTextHandler(log, nil))}},
		p:  Pipeline{Plan: &pipeline.Plan{Name: "enrich"}},
	}
	tb := &tables{ru: ru, streamOf: map[string]string{"customers": "orders"}, rows: map[string][]string{"orders": {"customers"}},
		pending: map[topicPartition]*catchUp{}}
	for p, end := range ends {
		tb.pending[topicPartition{"orders", p}] = &catchUp{assigned: start, looked: true, last: start,
			end: map[string]int64{"customers": end}, pos: map[string]int64{}}
	}
	return tb
}

// fetch is one poll's records: offsets from..to (inclusive) of each topic
// partition.
func fetch(parts ...fetchedRange) kgo.Fetches {
	var f kgo.Fetch
	for _, pr := range parts {
		var recs []*kgo.Record
		for o := pr.from; o <= pr.to; o++ {
			recs = append(recs, &kgo.Record{Topic: pr.topic, Partition: pr.partition, Offset: o})
		}
		f.Topics = append(f.Topics, kgo.FetchTopic{Topic: pr.topic, Partitions: []kgo.FetchPartition{{Partition: pr.partition, Records: recs}}})
	}
	return kgo.Fetches{f}
}

type fetchedRange struct {
	topic     string
	partition int32
	from, to  int64
}

// TestTablesWaitWhileOtherPartitionsFill: a task's stream waits for its
// table partition to be read to its end however long other partitions
// fill the fetches. It used to resume once the table partition had
// brought nothing for a second, which it does when the stream of a task
// already running has a backlog: every fetch response filled with it, and
// the waiting task joined its stream against a table with rows missing
// (BenchmarkRunnerJoin with a million records lost half its outputs). Only
// a consumer that fetched nothing at all for tableQuiet takes a table as
// caught up short of its end.
func TestTablesWaitWhileOtherPartitionsFill(t *testing.T) {
	var log bytes.Buffer
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tb := tablesOn(&log, t0, map[int32]int64{0: 100, 1: 500})
	poll := func(at time.Duration, f kgo.Fetches) map[string][]int32 {
		tb.note(f, t0.Add(at))
		return tb.ready(nil, nil, t0.Add(at))
	}

	// Task 0's table comes in one fetch: its stream resumes.
	if got := poll(10*time.Millisecond, fetch(fetchedRange{"customers", 0, 0, 99}, fetchedRange{"customers", 1, 0, 99})); len(got["orders"]) != 1 || got["orders"][0] != 0 {
		t.Fatalf("after task 0's table was read: resumed %v, want orders partition 0", got)
	}
	// Task 0's stream then fills every fetch for five seconds.
	for at := 20 * time.Millisecond; at < 5*time.Second; at += 20 * time.Millisecond {
		if got := poll(at, fetch(fetchedRange{"orders", 0, int64(at / time.Millisecond), int64(at/time.Millisecond) + 19})); len(got) > 0 {
			t.Fatalf("at %v, with task 1's table at 100 of 500 and the stream of task 0 filling the fetches: resumed %v", at, got)
		}
	}
	// Then the rest of task 1's table comes.
	if got := poll(5*time.Second, fetch(fetchedRange{"customers", 1, 100, 499})); len(got["orders"]) != 1 || got["orders"][0] != 1 {
		t.Fatalf("after task 1's table was read: resumed %v, want orders partition 1", got)
	}
	if n := strings.Count(log.String(), "tables caught up"); n != 2 {
		t.Errorf("%d tasks logged their tables caught up, want 2:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), "short of their end") {
		t.Errorf("a table was taken as caught up short of its end:\n%s", log.String())
	}
}

// TestTablesQuietConsumer: a table partition that stops short of the end
// looked up (its tail no longer served) lets its task go once neither it
// nor anything else has been fetched for tableQuiet, and not before.
func TestTablesQuietConsumer(t *testing.T) {
	var log bytes.Buffer
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tb := tablesOn(&log, t0, map[int32]int64{0: 100})
	tb.note(fetch(fetchedRange{"customers", 0, 0, 89}), t0)
	if got := tb.ready(nil, nil, t0); len(got) > 0 {
		t.Fatalf("at 90 of 100: resumed %v", got)
	}
	tb.note(kgo.Fetches{}, t0.Add(tableQuiet/2))
	if got := tb.ready(nil, nil, t0.Add(tableQuiet/2)); len(got) > 0 {
		t.Fatalf("quiet for half of tableQuiet: resumed %v", got)
	}
	tb.note(kgo.Fetches{}, t0.Add(tableQuiet))
	if got := tb.ready(nil, nil, t0.Add(tableQuiet)); len(got["orders"]) != 1 {
		t.Fatalf("quiet for tableQuiet: resumed %v, want orders partition 0", got)
	}
	if !strings.Contains(log.String(), "tables quiet short of their end") {
		t.Errorf("the log does not say the table stopped short of its end:\n%s", log.String())
	}
}
