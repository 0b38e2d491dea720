// Package route provides the route operator, which writes each record to the
// topic of the first case it matches, and copies of it to the topics of the
// `also` cases it matches before that.
package route

import (
	"context"
	"regexp"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "The cases, tried in order; a record goes to the topic of the first case whose when is true, and a copy to the topic of every also case it matches on the way. Records that match no case without also continue to the next step.",
  "type": "array",
  "minItems": 1,
  "items": {
    "description": "One case: a predicate and the topic matching records are written to.",
    "type": "object",
    "additionalProperties": false,
    "required": ["to"],
    "properties": {
      "when": {"description": "A predicate over the record, such as level == \"error\". Without it the case matches every record, so it must be the last case.", "type": "string", "minLength": 1},
      "to": {"description": "The Kafka topic that matching records are written to.", "type": "string", "minLength": 1},
      "also": {"description": "true: a matching record is written to the topic and also goes on, to the later cases and then the next step (fan-out). Default false: it is written to the topic only.", "type": "boolean"}
    }
  }
}`

// Register adds the route operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "route",
		Summary: "Writes each record to the topic of the first case it matches; `also` cases write a copy and let it go on.",
		Description: "The step is a list of cases `{when: <predicate>, to: <topic>}`, tried in order. A record " +
			"is written to the topic of the first case whose predicate is true and goes no further in this " +
			"pipeline; a record that matches no case continues to the next step (or the pipeline's sink). A last " +
			"case without `when` matches every record that is left, as a default. The topics are part of the " +
			"pipeline's plan, like its sink.\n\n" +
			"A case with `also: true` does not stop the record: a matching record is written to its topic and goes " +
			"on to the later cases and, unless one of those takes it, the next step. So one record can reach " +
			"several topics (fan-out, like repeated `to()` in Kafka Streams): `- {when: ms > 1000, to: views.slow, " +
			"also: true}` copies slow views to `views.slow` while every view still reaches the sink. All the copies " +
			"are written in the input's transaction under exactly-once, so a reader sees all of them or none. An " +
			"`also` case without `when` copies every record and may stand anywhere.\n\n" +
			"As with `filter`, a predicate that is `nil` does not match, and a predicate that fails on a record " +
			"sends it to the DLQ with reason `expression`, without trying the later cases.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "Split logs by level",
				Summary: "Errors and warnings get their own topics; everything else continues down the pipeline.",
				Step: "- {when: level == \"error\", to: logs.errors}\n" +
					"- {when: level == \"warn\", to: logs.warnings}\n",
				Input: []any{
					map[string]any{"level": "error", "msg": "disk full"},
					map[string]any{"level": "info", "msg": "started"},
					map[string]any{"level": "warn", "msg": "slow"},
					map[string]any{"msg": "no level"},
				},
				Output: []any{
					map[string]any{"level": "error", "msg": "disk full"},
					map[string]any{"level": "info", "msg": "started"},
					map[string]any{"level": "warn", "msg": "slow"},
					map[string]any{"msg": "no level"},
				},
			},
			{
				Title:   "A default case",
				Summary: "A last case without when takes every record left; a failing predicate sends the record to the DLQ.",
				Step: "- when: speed > 120\n" +
					"  to: alerts.speeding\n" +
					"- to: vehicles.normal\n",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 130},
					map[string]any{"vehicle_id": "v2", "speed": 50},
					map[string]any{"vehicle_id": "v3"},
				},
				Output: []any{
					map[string]any{"vehicle_id": "v1", "speed": 130},
					map[string]any{"vehicle_id": "v2", "speed": 50},
				},
				DLQ: []catalog.Reason{catalog.ReasonExpression},
			},
			{
				Title: "Fan-out: a copy to another topic",
				Summary: "Every view goes on to the sink; slow ones are also written to views.slow, and errors " +
					"to views.errors as well. The output lists each record once per topic it reaches.",
				Step: "- {when: ms > 1000, to: views.slow, also: true}\n" +
					"- {when: status >= 500, to: views.errors, also: true}\n",
				Input: []any{
					map[string]any{"url": "/a", "ms": 120, "status": 200},
					map[string]any{"url": "/b", "ms": 2500, "status": 200},
					map[string]any{"url": "/c", "ms": 3000, "status": 503},
				},
				Output: []any{
					map[string]any{"url": "/a", "ms": 120, "status": 200},
					map[string]any{"url": "/b", "ms": 2500, "status": 200},
					map[string]any{"url": "/b", "ms": 2500, "status": 200},
					map[string]any{"url": "/c", "ms": 3000, "status": 503},
					map[string]any{"url": "/c", "ms": 3000, "status": 503},
					map[string]any{"url": "/c", "ms": 3000, "status": 503},
				},
			},
		},
		New: newRoute,
	})
}

type routeCase struct {
	when *expression.Program // nil matches everything
	to   string
	also bool // write a copy and go on
}

// router is a catalog.Router: the plan learns its topics from Topics.
var _ catalog.Router = (*router)(nil)

type router struct {
	cases  []routeCase
	topics []string
}

// topicRE is what Kafka accepts as a topic name.
var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func newRoute(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	items := conf.Items()
	if len(items) == 0 {
		kind := "a " + conf.KindName()
		if conf.IsList() {
			kind = "an empty list"
		}
		return nil, conf.Errorf("expected a list of cases like {when: <predicate>, to: <topic>}, got %s", kind)
	}
	var errs diag.List
	rt := &router{}
	seen := map[string]bool{}
	for i, item := range items {
		c, err := compileCase(item)
		if err != nil {
			errs.Add(item.Pos(), err)
			continue
		}
		if c.when == nil && !c.also && i < len(items)-1 {
			errs.Add(item.Pos(), item.Errorf("this case has no when, so it matches every record and the cases after it never match; move it last or add a when"))
		}
		rt.cases = append(rt.cases, c)
		if !seen[c.to] {
			seen[c.to] = true
			rt.topics = append(rt.topics, c.to)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return rt, nil
}

func compileCase(item catalog.Config) (routeCase, error) {
	var c routeCase
	if !item.IsMap() {
		return c, item.Errorf("expected a case like {when: <predicate>, to: <topic>}, got a %s", item.KindName())
	}
	var errs diag.List
	hasTo := false
	for _, f := range item.Fields() {
		switch f.Name {
		case "when":
			p, err := f.Value.Expr(expression.Bool)
			if err != nil {
				errs.Add(f.Value.Pos(), err)
				continue
			}
			c.when = p.Named("route when")
		case "to":
			hasTo = true
			if !f.Value.IsScalar() || !topicRE.MatchString(f.Value.String()) || f.Value.String() == "." || f.Value.String() == ".." {
				errs.Add(f.Value.Pos(), f.Value.Errorf("%q is not a valid Kafka topic name: use letters, digits, '.', '_' and '-', at most 249", f.Value.String()))
				continue
			}
			c.to = f.Value.String()
		case "also":
			if err := f.Value.Decode(&c.also); err != nil {
				errs.Add(f.Value.Pos(), f.Value.Errorf("also must be true or false, not %q", f.Value.String()))
			}
		default:
			errs.Add(f.NamePos, diag.Errorf(f.NamePos, "unknown field %q; a case has when, to and also", f.Name))
		}
	}
	if !hasTo {
		errs.Add(item.Pos(), item.Errorf("this case has no to: name the topic its records are written to"))
	}
	return c, errs.Err()
}

// Topics returns the topics the cases write to, each once, in order.
func (rt *router) Topics() []string { return append([]string(nil), rt.topics...) }

// KeepsValue implements engine.ValueKeeper: route sends records on
// unchanged, to a case's topic or the next step.
func (rt *router) KeepsValue() {}

// FieldDemand implements engine.FieldDemander: route reads the fields of
// its conditions; what it writes to a case's topic keeps the value, so
// the steps after it need what they needed.
func (rt *router) FieldDemand(after []string, afterAll bool) ([]string, bool) {
	if afterAll {
		return nil, true
	}
	need := append([]string(nil), after...)
	for i := range rt.cases {
		if c := &rt.cases[i]; c.when != nil {
			names, all := c.when.Fields()
			if all {
				return nil, true
			}
			need = append(need, names...)
		}
	}
	return need, false
}

// Process writes r to the first matching case's topic, or passes it on;
// a matching also case writes it and goes on. Output.To encodes the
// record before it returns, so the steps after this one may change it in
// place.
func (rt *router) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	for i := range rt.cases {
		c := &rt.cases[i]
		if c.when != nil {
			ok, err := c.when.Bool(r)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		if !c.also {
			return out.To(ctx, c.to, r)
		}
		if err := out.To(ctx, c.to, r); err != nil {
			return err
		}
	}
	return out.Next(ctx, r)
}
