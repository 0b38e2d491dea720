// Package state provides the state stores of stateful pipeline steps: one
// store per (pipeline, stateful step, task), backed by a compacted changelog
// topic <pipeline>-<step>-changelog with the input's partition count.
//
// # Stores
//
// [Store] is the operators' view: Get, Put, Delete and an ordered Scan.
// [Memory] keeps everything in a hash table (internal/keytable, short keys
// and values inline in their entries) with a lazily sorted key index (the
// index is brought up to date, by sorting only the keys added since, when
// a Scan needs it). Package
// pebblestore keeps state on disk in a Pebble v2 database, for state larger
// than memory; it is a package of its own so that only the binaries that
// open disk stores (the runner) link Pebble. Both also implement
// [Committer]: applying one commit's changes together with the changelog
// offsets they bring the store to, atomically.
//
// # Changelog capture and exactly-once
//
// A task does not write to its Committer directly. It wraps it in a
// [Logged] store, which buffers the writes of the current commit interval
// in memory (reads see them), keeping only the last write per key. At commit
// time the task calls [Logged.Drain] and produces the returned records
// (a nil value is a tombstone) to its changelog partition inside the same
// Kafka transaction as its outputs and consumed offsets. Then:
//
//   - the transaction committed: [Logged.Committed] with the offset after
//     the last changelog record produced applies the buffered writes and
//     that offset (the checkpoint) to the underlying store in one batch;
//   - the transaction aborted: [Logged.Aborted] drops the buffered writes,
//     so the store is again the state as of the last committed transaction.
//
// Over a [Memory] store, Logged writes through instead, keeping the value
// each key had before its first write of the interval: Drain reads the
// written keys' values from the store, Committed records the checkpoint,
// and Aborted puts the old values back. A memory store keeps nothing
// across a crash, so what follows holds for it too: the state it holds
// between transactions is the committed one.
//
// So the local store never holds a write that is not in a committed
// transaction once that transaction has ended: it is never AHEAD of the
// changelog. It can be BEHIND: a
// crash after the commit and before the batch is applied, or, because the
// Pebble store has no write-ahead log (package pebblestore says why), a
// crash before Pebble flushed its memtable. Both are safe: the store then
// holds the state as of an earlier committed transaction together with
// that transaction's checkpoint (the
// batch holds both, and Pebble persists memtables in order, so what
// survives a crash is a prefix of the applied batches, each with its own
// checkpoint). Replaying the changelog from the checkpoint to its end
// re-applies absolute values (put key=value, delete key) in order, which
// yields the state as of the last committed transaction whatever the store
// held of the tail already.
//
// "Valid", for a local store and its checkpoint, therefore means: the store
// equals the committed state as of changelog offset C (every committed
// record before C applied, none after). A store is not valid, and is wiped
// and restored from the start of the changelog, when its checkpoint is
// missing or does not decode, when Pebble cannot open it, when the
// checkpoint is older than pebblestore.MaxCheckpointAge (Kafka removes
// tombstones from a compacted topic delete.retention.ms after cleaning, so
// a replay from a very old offset could miss a delete), and, found by the
// restore (package changelog), when C is past the changelog's end (the
// topic was recreated) or before its start (records were deleted).
//
// # Restore
//
// On assignment a task restores its stores before it processes, from the
// checkpoint to the changelog's end: package changelog does it, with
// progress reports and their metrics. It is a package of its own so that
// only the binaries that restore stores (the runner) link the Kafka
// client, not the control plane, which uses this package through the
// compiler and engine.
//
// Stores are not safe for concurrent use: a task uses its stores from one
// goroutine, as the runtime processes a stateful pipeline record by record.
package state
