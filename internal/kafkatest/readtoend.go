package kafkatest

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadToEnd reads topic from its start with read_committed isolation up to
// the end offsets (high watermarks) it has when ReadToEnd is called, handing
// every record to each until each returns an error, and returns how many
// records it read. A topic that does not exist reads as empty.
//
// It proves what a topic holds without waiting for quiet: call it once every
// writer's transactions are decided (after the pipeline's group has
// committed the input, or the pipeline has stopped), so the last stable
// offset has reached the high watermark; an open transaction makes it wait
// until ctx ends and fail. Transaction markers occupy offsets but are not
// records: the end offset of a transactional partition is one past its last
// commit marker, not one past its last record, so the read keeps the
// markers (kgo.KeepControlRecords) to see how far it has got, and hands
// only data records to each.
func ReadToEnd(ctx context.Context, brokers []string, topic string, each func(*kgo.Record) error) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return 0, nil
		}
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	limit := map[int32]int64{}      // every partition's end offset
	end := map[int32]int64{}        // the partitions still to read
	start := map[int32]kgo.Offset{} // every partition with something to read
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			limit[o.Partition] = o.Offset
			end[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(end) == 0 {
		return 0, nil
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	var failed error // the first error of each
	for len(end) > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n, fmt.Errorf("read %d records of %s; partitions %v not read up to their end offsets %v: %w", n, topic, keys(end), end, ctx.Err())
		}
		if err := f.Err0(); err != nil {
			return n, fmt.Errorf("reading %s: %w", topic, err)
		}
		f.EachRecord(func(r *kgo.Record) {
			if e, ok := end[r.Partition]; ok && r.Offset+1 >= e {
				delete(end, r.Partition)
			}
			if r.Attrs.IsControl() || r.Offset >= limit[r.Partition] {
				return // a marker, or written after the end offsets were listed
			}
			n++
			if failed == nil {
				failed = each(r)
			}
		})
	}
	return n, failed
}

func keys(m map[int32]int64) []int32 {
	ks := make([]int32, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
