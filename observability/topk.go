package observability

import (
	"container/heap"
	"sort"
)

// TopK is a Space-Saving sketch (Metwally, Agrawal, El Abbadi 2005) of the
// most frequent 64-bit key hashes of a stream, in k counters: a key seen
// more than Total/k times is always among them, and a key's Count
// over-estimates its true count by at most its Error. Add is O(log k). It
// is not safe for concurrent use.
type TopK struct {
	k     int
	total uint64
	h     counterHeap
	index map[uint64]int // key -> position in h
}

// KeyCount is one counter of a TopK.
type KeyCount struct {
	Key   uint64
	Count uint64
	Error uint64
}

// NewTopK returns a sketch with k counters (at least 1).
func NewTopK(k int) *TopK {
	k = max(k, 1)
	t := &TopK{k: k, index: make(map[uint64]int, k)}
	t.h.index = t.index
	return t
}

// Add counts one occurrence of key.
func (t *TopK) Add(key uint64) {
	t.total++
	if i, ok := t.index[key]; ok {
		t.h.items[i].Count++
		heap.Fix(&t.h, i)
		return
	}
	if len(t.h.items) < t.k {
		heap.Push(&t.h, KeyCount{Key: key, Count: 1})
		return
	}
	// Replace the smallest counter: the new key inherits its count as
	// its possible over-estimate.
	min := t.h.items[0]
	delete(t.index, min.Key)
	t.h.items[0] = KeyCount{Key: key, Count: min.Count + 1, Error: min.Count}
	t.index[key] = 0
	heap.Fix(&t.h, 0)
}

// Total is the number of Adds since the sketch was made or reset.
func (t *TopK) Total() uint64 { return t.total }

// Top returns the n largest counters, largest first (ties by key, so the
// order is deterministic).
func (t *TopK) Top(n int) []KeyCount {
	out := append([]KeyCount(nil), t.h.items...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if n < len(out) {
		out = out[:n]
	}
	return out
}

// Reset empties the sketch, keeping its memory.
func (t *TopK) Reset() {
	t.total = 0
	t.h.items = t.h.items[:0]
	clear(t.index)
}

// counterHeap is a min-heap of counters by count that keeps index (key ->
// position) up to date.
type counterHeap struct {
	items []KeyCount
	index map[uint64]int
}

func (h *counterHeap) Len() int           { return len(h.items) }
func (h *counterHeap) Less(i, j int) bool { return h.items[i].Count < h.items[j].Count }
func (h *counterHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].Key] = i
	h.index[h.items[j].Key] = j
}
func (h *counterHeap) Push(x any) {
	kc := x.(KeyCount)
	h.index[kc.Key] = len(h.items)
	h.items = append(h.items, kc)
}
func (h *counterHeap) Pop() any {
	kc := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.index, kc.Key)
	return kc
}
