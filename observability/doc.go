// Package observability is Sluice's model of lag and skew (DESIGN.md §6):
// Burrow's evaluation rules over a sliding window of commits, the
// partition, stage and pipeline roll-up with explicit states instead of
// false numbers, a Space-Saving top-K sketch for hot keys, the merge of
// many runners' reports into one pipeline view with its skew, and the
// Prometheus series a runner exports. It imports no Kafka client: the
// runner (internal/runtime, lag.go) reads offsets and timestamps and feeds
// them in as Samples, and everything here is tested with synthetic
// histories.
//
// # Evaluation
//
// Evaluate is Burrow's calculatePartitionStatus, rule for rule and in its
// order (no lag: OK; STOPPED; lag zero at some commit: OK; REWIND;
// STALLED; WARNING; OK), checked against Burrow's own test vectors. A
// Partition records a commit when the committed offset moved, or when a
// live member of the group holds the partition (the group commits, the
// offset does not move: what Burrow sees as repeated commits); an offset
// that nobody moves and nobody holds records nothing, so the window ages
// into STOPPED.
//
// # Metrics
//
// NewMetrics registers, on the registerer it is given:
//
//	sluice_pipeline_lag_status{pipeline}                    worst stage status: 0 OK, 1 WARNING, 2 STOPPED, 3 STALLED, 4 REWIND
//	sluice_pipeline_event_age_seconds{pipeline}             age of the oldest record not yet through the pipeline
//	sluice_stage_lag_records{pipeline,stage,topic}          lag in records, summed over the stage's partitions
//	sluice_stage_time_lag_seconds{pipeline,stage,topic}     largest time lag of the stage's partitions
//	sluice_stage_lag_status{pipeline,stage,topic}           worst partition status (codes as above)
//	sluice_stage_consume_rate{pipeline,stage,topic}         records per second committed
//	sluice_partition_lag_records{pipeline,stage,partition}  lag of a partition whose task this runner holds
//	sluice_partition_time_lag_seconds{pipeline,stage,partition}
//	sluice_partition_consume_rate{pipeline,stage,partition}
//	sluice_partition_hot_key_share{pipeline,stage,partition} share of the task's records with its most frequent key
//
// Every runner of a pipeline samples all its partitions, so stage and
// pipeline series are the same on each: aggregate with max by (pipeline,
// stage). The DLQ rate comes from the runtime's sluice_dlq_total.
//
// # Files
//
// grafana/pipeline.json is a Grafana dashboard of one pipeline (variable
// $pipeline) and prometheus/alerts.yaml the alert rules (lag status, time
// lag, DLQ rate); both are checked by this package's tests, and by
// `promtool check rules` when promtool is installed.
package observability
