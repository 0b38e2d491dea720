package window

import "github.com/sluicehq/sluice/catalog"

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["grace", "aggregates"],
  "oneOf": [{"required": ["tumbling"]}, {"required": ["hopping"]}, {"required": ["session"]}],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the grouping key; the record key when left out. Records are repartitioned by it when it differs from the input's key."},
    "tumbling": {"type": "string", "description": "Window size of fixed, non-overlapping windows aligned to the epoch, like 1m."},
    "hopping": {"type": "object", "additionalProperties": false, "required": ["size", "advance"],
      "description": "Overlapping windows of size starting every advance; a record is in size/advance windows.",
      "properties": {"size": {"type": "string"}, "advance": {"type": "string"}}},
    "session": {"type": "object", "additionalProperties": false, "required": ["gap"],
      "description": "Windows of activity per key, closed by a gap without records; a record that bridges two sessions merges them.",
      "properties": {"gap": {"type": "string"}}},
    "grace": {"type": "string", "description": "How long after its end a window still accepts out-of-order records (0s for none). Required: there is no hidden default. Records for a window closed longer ago go to the DLQ with reason late."},
    "emit": {"enum": ["final", "update"], "default": "final", "description": "final: one result per window when it closes (end + grace passed). update: a result after every change, and a null value for a session merged away."},
    "aggregates": {
      "type": "object", "minProperties": 1,
      "description": "Output field name to aggregate: count, or a mapping with one function and its input expression.",
      "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
      "additionalProperties": {"oneOf": [
        {"const": "count"},
        {"type": "object", "additionalProperties": false, "required": ["count"], "properties": {"count": {"type": "string", "description": "Counts records whose expression is not null."}}},
        {"type": "object", "additionalProperties": false, "required": ["sum"], "properties": {"sum": {"type": "string"}}},
        {"type": "object", "additionalProperties": false, "required": ["min"], "properties": {"min": {"type": "string"}}},
        {"type": "object", "additionalProperties": false, "required": ["max"], "properties": {"max": {"type": "string"}}},
        {"type": "object", "additionalProperties": false, "required": ["avg"], "properties": {"avg": {"type": "string"}}},
        {"type": "object", "additionalProperties": false, "required": ["first"], "properties": {"first": {"type": "string", "description": "The value with the earliest event time."}}},
        {"type": "object", "additionalProperties": false, "required": ["last"], "properties": {"last": {"type": "string", "description": "The value with the latest event time."}}},
        {"type": "object", "additionalProperties": false, "required": ["count_distinct"], "properties": {
          "count_distinct": {"type": "string", "description": "Distinct values, estimated with HyperLogLog (exact up to 2048 values at the default precision)."},
          "precision": {"type": "integer", "minimum": 4, "maximum": 18, "description": "HyperLogLog precision; 14 (about 0.8% error) by default."}}},
        {"type": "object", "additionalProperties": false, "required": ["percentiles", "at"], "properties": {
          "percentiles": {"type": "string", "description": "A numeric expression, summarised by a quantile sketch with 1% relative error."},
          "at": {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0, "maximum": 100}, "description": "Percentiles to report, like [50, 99]; the result maps p50, p99 to values."}}},
        {"type": "object", "additionalProperties": false, "required": ["collect"], "oneOf": [{"required": ["first"]}, {"required": ["last"]}], "properties": {
          "collect": {"type": "string"},
          "first": {"type": "integer", "minimum": 1, "description": "Keep the N values with the earliest event times."},
          "last": {"type": "integer", "minimum": 1, "description": "Keep the N values with the latest event times."}}},
        {"type": "object", "additionalProperties": false, "required": ["top_n", "n", "by"], "properties": {
          "top_n": {"type": "string", "description": "The value to keep for the top entries."},
          "n": {"type": "integer", "minimum": 1},
          "by": {"type": "string", "description": "The number entries are ranked by, largest first."}}}
      ]}
    }
  }
}`

// Register adds the window operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "window",
		Summary: "Aggregates records per key over tumbling, hopping or session windows on event time.",
		Description: "Groups records by `by` (or the record key) into windows on the record's event time " +
			"(the source's `timestamp`, else the Kafka timestamp) and computes the named aggregates per window.\n\n" +
			"A window closes when the task's stream time (the largest event time seen) passes its end plus `grace`; " +
			"`emit: final` then writes one record per key and window, keyed by the grouping key, with " +
			"`window.start`, `window.end` and one field per aggregate, timestamped at the window's end. " +
			"`emit: update` writes the current result after every record instead. " +
			"A record whose windows have all closed goes to the DLQ with reason `late`; a non-numeric value for " +
			"`sum`, `min`, `max`, `avg`, `percentiles` or a `top_n` ranking goes with reason `type`. Null inputs are skipped. " +
			"A `sum` of integers is an integer (one float input, or a sum past 64 bits, makes it a float); " +
			"`min` and `max` are the input they pick, integer or float; `avg` and `percentiles` are floats.\n\n" +
			"State lives in the task's store and its changelog: changing the key, the window or the aggregates " +
			"makes it unreadable, which a new revision must accept with `reset: true`.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"tumbling", "hopping", "session", "aggregates"}},
		Examples: []catalog.Example{
			{
				Title:   "Clicks per page per minute",
				Summary: "Tumbling one-minute windows per URL; each closes when event time passes its end (here: at the end of the input).",
				Step:    "by: url\ntumbling: 1m\ngrace: 10s\naggregates:\n  clicks: count\n  users: {count_distinct: user}\n",
				Input: []any{
					map[string]any{"url": "/a", "user": "u1", "ts": "2026-01-01T00:00:05Z"},
					map[string]any{"url": "/a", "user": "u2", "ts": "2026-01-01T00:00:40Z"},
					map[string]any{"url": "/b", "user": "u1", "ts": "2026-01-01T00:00:50Z"},
					map[string]any{"url": "/a", "user": "u1", "ts": "2026-01-01T00:01:10Z"},
				},
				Output: []any{
					map[string]any{"window": map[string]any{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"}, "clicks": 2, "users": 2},
					map[string]any{"window": map[string]any{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"}, "clicks": 1, "users": 1},
					map[string]any{"window": map[string]any{"start": "2026-01-01T00:01:00Z", "end": "2026-01-01T00:02:00Z"}, "clicks": 1, "users": 1},
				},
			},
			{
				Title:   "Late records go to the DLQ",
				Summary: "With 5s grace, the window [00:00, 00:10) closes once event time reaches 00:15; a record for it after that is late.",
				Step:    "tumbling: 10s\ngrace: 5s\naggregates:\n  total: {sum: amount}\n  biggest: {max: amount}\n",
				Input: []any{
					map[string]any{"amount": 5, "ts": "2026-01-01T00:00:01Z"},
					map[string]any{"amount": 7, "ts": "2026-01-01T00:00:16Z"},
					map[string]any{"amount": 9, "ts": "2026-01-01T00:00:09Z"},
					map[string]any{"amount": "ten", "ts": "2026-01-01T00:00:17Z"},
				},
				Output: []any{
					map[string]any{"window": map[string]any{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:10Z"}, "total": 5, "biggest": 5},
					map[string]any{"window": map[string]any{"start": "2026-01-01T00:00:10Z", "end": "2026-01-01T00:00:20Z"}, "total": 7, "biggest": 7},
				},
				DLQ: []catalog.Reason{catalog.ReasonLate, catalog.ReasonType},
			},
			{
				Title: "Sessions, updated as they grow",
				Summary: "A session per user closes after 30 minutes without a click. With emit: update every record writes the session's " +
					"current result; when a record extends a session, the result for the session's previous extent is retracted with a null value.",
				Step: "by: user\nsession: {gap: 30m}\ngrace: 0s\nemit: update\naggregates:\n  pages: {collect: url, last: 2}\n  latency: {avg: ms}\n",
				Input: []any{
					map[string]any{"user": "u1", "url": "/a", "ms": 100, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"user": "u1", "url": "/b", "ms": 300, "ts": "2026-01-01T10:10:00Z"},
				},
				Output: []any{
					map[string]any{"window": map[string]any{"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:30:00Z"}, "pages": []any{"/a"}, "latency": 100},
					nil,
					map[string]any{"window": map[string]any{"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:40:00Z"}, "pages": []any{"/a", "/b"}, "latency": 200},
				},
			},
		},
		New: newWindow,
	})
}
