// Package changelog restores a state store (a [state.Committer]) from its
// changelog partition, with progress reports and their Prometheus metrics.
// What the changelog holds, and when a store and its checkpoint are valid,
// is in package state's comment. It is a package of its own, apart from
// package state, so that only the binaries that restore stores (the
// runner) link the Kafka client: the control plane uses package state
// through the compiler and engine, for memory stores and Logged.
//
// # Restore
//
// On assignment a task restores its stores before it processes:
// [Restorer.Restore] reads the changelog partition from the checkpoint to
// its last stable offset as of the start, read_committed (records of
// aborted transactions are skipped), and applies the records in batches,
// each with its checkpoint, so an interrupted restore resumes where it
// stopped. A checkpoint past the changelog's end (the topic was
// recreated) or before its start (records were deleted) cannot be caught
// up from: the store is then emptied and restored from the start
// ([Result.Reset]). Reading and writing overlap: a goroutine of the
// restore's own collects the records of each fetch into batches and
// writes them to the store while the next fetches are read (the store is
// used by that goroutine alone, and Restore returns only after it is
// done).
//
// # Progress and metrics
//
// A restore reports [Progress] (offsets done and total, rate, ETA) to a
// callback, which [Metrics] turns into Prometheus series:
//
//	sluice_state_restore_records_done{pipeline,step,partition}   changelog offsets restored so far
//	sluice_state_restore_records_total{pipeline,step,partition}  changelog offsets to restore
//	sluice_state_restore_rate{pipeline,step,partition}           offsets restored per second
//	sluice_state_restoring{pipeline,step,partition}              1 while the restore runs
package changelog
