// Package pebblestore provides the on-disk state store: a [state.Store] and
// [state.Committer] on a Pebble v2 database in a directory of its own, for
// state larger than memory (a pipeline's `state: {store: disk}`). Package
// state explains the changelog protocol the store takes part in, and when
// a store is valid; this package is apart from it so that binaries that
// use state but never open a disk store (the control plane) do not link
// Pebble.
//
// # Why Pebble runs without a write-ahead log
//
// The changelog is the source of truth: anything lost locally is replayed
// from it. A WAL would make each commit's batch durable on its own, at the
// cost of writing every byte twice and, with syncs, a disk flush per commit;
// without it a crash loses at most the writes since the last memtable
// flush, which the restore replays from the checkpoint found on disk. Close
// flushes the memtable, so a clean shutdown restarts with nothing to replay.
//
// Each [Store.Apply] writes the changes and their checkpoint in one batch,
// and Pebble persists memtables in order, so what survives a crash is a
// prefix of the applied batches, each with its own checkpoint: the store
// is behind the changelog, never ahead of it. A store that cannot be
// trusted is wiped when it is opened (see [Open] and [Store.Wiped]).
package pebblestore
