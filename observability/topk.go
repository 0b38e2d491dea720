package observability

import "sort"

// TopK is a Space-Saving sketch (Metwally, Agrawal, El Abbadi 2005) of the
// most frequent 64-bit key hashes of a stream, in k counters: a key seen
// more than Total/k times is always among them, and a key's Count
// over-estimates its true count by at most its Error. Add is O(log k). It
// is not safe for concurrent use.
//
// The counters live in fixed slots; a min-heap of slot numbers orders
// them by count, and each slot knows its place in the heap, so moving a
// counter in the heap writes two small arrays, never the key index (a
// map), which is touched only when a key enters or leaves.
type TopK struct {
	k     int
	total uint64
	slots []slot         // the counters, in the order keys arrived
	heap  []int32        // slot numbers, a min-heap by count
	index map[uint64]int // key -> slot
}

type slot struct {
	KeyCount
	pos int32 // in heap
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
	return &TopK{k: k, index: make(map[uint64]int, k), slots: make([]slot, 0, k), heap: make([]int32, 0, k)}
}

// Add counts one occurrence of key.
func (t *TopK) Add(key uint64) {
	t.total++
	if i, ok := t.index[key]; ok {
		t.slots[i].Count++
		t.down(int(t.slots[i].pos))
		return
	}
	if len(t.slots) < t.k {
		i := len(t.slots)
		t.slots = append(t.slots, slot{KeyCount: KeyCount{Key: key, Count: 1}, pos: int32(len(t.heap))})
		t.heap = append(t.heap, int32(i))
		t.index[key] = i
		t.up(len(t.heap) - 1)
		return
	}
	// Replace the smallest counter: the new key inherits its count as
	// its possible over-estimate.
	i := int(t.heap[0])
	min := t.slots[i].Count
	delete(t.index, t.slots[i].Key)
	t.slots[i].KeyCount = KeyCount{Key: key, Count: min + 1, Error: min}
	t.index[key] = i
	t.down(0)
}

// down moves the counter at heap position p towards the leaves while it
// is larger than a child (its count only grows).
func (t *TopK) down(p int) {
	h, n := t.heap, len(t.heap)
	for {
		l := 2*p + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && t.slots[h[r]].Count < t.slots[h[l]].Count {
			c = r
		}
		if t.slots[h[p]].Count <= t.slots[h[c]].Count {
			break
		}
		h[p], h[c] = h[c], h[p]
		t.slots[h[p]].pos, t.slots[h[c]].pos = int32(p), int32(c)
		p = c
	}
}

// up moves the counter at heap position p towards the root while it is
// smaller than its parent.
func (t *TopK) up(p int) {
	h := t.heap
	for p > 0 {
		q := (p - 1) / 2
		if t.slots[h[q]].Count <= t.slots[h[p]].Count {
			break
		}
		h[p], h[q] = h[q], h[p]
		t.slots[h[p]].pos, t.slots[h[q]].pos = int32(p), int32(q)
		p = q
	}
}

// Total is the number of Adds since the sketch was made or reset.
func (t *TopK) Total() uint64 { return t.total }

// Top returns the n largest counters, largest first (ties by key, so the
// order is deterministic).
func (t *TopK) Top(n int) []KeyCount {
	out := make([]KeyCount, len(t.slots))
	for i, s := range t.slots {
		out[i] = s.KeyCount
	}
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
	t.slots = t.slots[:0]
	t.heap = t.heap[:0]
	clear(t.index)
}
