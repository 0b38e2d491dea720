package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/sketch"
	"github.com/sluicehq/sluice/observability"
)

// keyFinder finds the key bytes behind hot key hashes, for pipelines whose
// project enabled record previews: the runtime's sketches hold hashes
// only, so it reads the tail of the hot key's partition (the last
// keyTail records) and hashes their keys. It runs only when previews are
// on; what it finds is rendered by previewOf when a report is built.
type keyFinder struct {
	opts []kgo.Opt

	mu      sync.Mutex
	keys    map[string][]byte    // hash -> key
	tried   map[string]time.Time // hash -> last search
	running bool
}

const (
	keyTail       = 500
	keyRetryAfter = 30 * time.Second
	maxKnownKeys  = 1000
)

func newKeyFinder(opts []kgo.Opt) *keyFinder {
	return &keyFinder{opts: opts, keys: map[string][]byte{}, tried: map[string]time.Time{}}
}

// lookup returns the keys known for hks, and starts a search for the
// others in the background (one at a time).
func (f *keyFinder) lookup(ctx context.Context, hks []observability.HotKey) map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	var missing []observability.HotKey
	for _, hk := range hks {
		if k, ok := f.keys[hk.Hash]; ok {
			out[hk.Hash] = k
		} else if time.Since(f.tried[hk.Hash]) > keyRetryAfter {
			missing = append(missing, hk)
		}
	}
	if len(missing) > 0 && !f.running && len(f.opts) > 0 {
		f.running = true
		now := time.Now()
		for _, hk := range missing {
			f.tried[hk.Hash] = now
		}
		go f.search(context.WithoutCancel(ctx), missing)
	}
	return out
}

func (f *keyFinder) search(ctx context.Context, hks []observability.HotKey) {
	defer func() {
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type tp struct {
		topic     string
		partition int32
	}
	want := map[tp]map[string]bool{}
	for _, hk := range hks {
		k := tp{hk.Topic, hk.Partition}
		if want[k] == nil {
			want[k] = map[string]bool{}
		}
		want[k][hk.Hash] = true
	}
	adm, err := kgo.NewClient(f.opts...)
	if err != nil {
		return
	}
	defer adm.Close()
	for k, hashes := range want {
		ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, k.topic)
		if err != nil {
			return
		}
		end, ok := ends.Lookup(k.topic, k.partition)
		if !ok || end.Err != nil || end.Offset == 0 {
			continue
		}
		from := max(end.Offset-keyTail, 0)
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			k.topic: {k.partition: kgo.NewOffset().At(from)}}), kgo.FetchIsolationLevel(kgo.ReadCommitted())}, f.opts...)...)
		if err != nil {
			return
		}
		for ctx.Err() == nil && len(hashes) > 0 {
			fs := cl.PollFetches(ctx)
			done := false
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset >= end.Offset-1 {
					done = true
				}
				if r.Key == nil {
					return
				}
				h := fmt.Sprintf("%016x", sketch.Hash64(r.Key))
				if hashes[h] {
					delete(hashes, h)
					f.mu.Lock()
					if len(f.keys) < maxKnownKeys {
						f.keys[h] = append([]byte(nil), r.Key...)
					}
					f.mu.Unlock()
				}
			})
			if done || fs.IsClientClosed() {
				break
			}
		}
		cl.Close()
	}
}
