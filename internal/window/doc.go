// Package window is the pure core of Sluice's stateful steps: window
// assignment on event time, aggregates with serializable accumulators, a
// per-task watermark tracker, and in-memory models of the window and dedupe
// operators that keep all their state as sortable key/value bytes in a Store.
// A runtime operator wraps these models around a changelogged state store;
// nothing here knows about Kafka, expressions or goroutines.
//
// # Time
//
// Event times, watermarks, window bounds, sizes, gaps, grace and horizons
// are int64 milliseconds since the Unix epoch (Kafka's timestamp unit), so
// they encode losslessly into 8-byte sortable keys. A window is the
// half-open interval [Start, End). Tumbling and hopping windows are aligned
// to the epoch.
//
// # Watermark and lateness
//
// Tracker computes a task's watermark W: the minimum, over its active input
// partitions, of the maximum event time each has seen (Kafka Streams'
// "stream time", generalised to several partitions). It never goes
// backwards. Grace belongs to a step, not to the task, so the issue's
// "max event time minus grace" is applied by the operator: a window closes
// when End + grace <= W, and then emits its final result and drops its
// state.
//
//   - Tumbling and hopping: a record is added to every window containing it
//     that is still open. It is late (rejected with reason "late") when all
//     of them are closed, that is when the last window containing it has
//     End + grace <= W. A hopping record that still fits some open windows
//     is added to those only, as Kafka Streams does.
//   - Session: a record at t covers [t, t+gap); records whose intervals
//     overlap (timestamps less than gap apart) are in one session, which is
//     [first record, last record + gap). A record is late when its own
//     interval has closed (t + gap + grace <= W), or when it lies within gap
//     of a session that has already closed (it would reopen a final result).
//     Closed sessions are remembered for that purpose until
//     End + gap + grace <= W, after which no accepted record can reach them.
//
// With these rules the final results are exactly the windows a brute-force
// recomputation over the accepted records gives, which the oracle tests
// check.
//
// # Aggregates
//
// See Aggregate. nil inputs are skipped by every aggregate (count() without
// an input counts records). Numeric aggregates reject non-numbers with an
// error wrapping ErrType; the operator rejects the whole record (reason
// "type") and changes no state.
package window
