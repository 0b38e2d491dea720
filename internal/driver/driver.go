// Package driver runs compiled pipelines in memory with a virtual clock, the
// role TopologyTestDriver plays for Kafka Streams. `runner test`, the IDE and
// push validation all run *_test.yaml files through it, on the same engine
// the Kafka runtime uses, so a test that passes here exercises the code that
// runs in production.
package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// Epoch is where the virtual clock starts. Records without a timestamp get
// the clock's time.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Driver runs one plan against in-memory topics.
type Driver struct {
	plan    *pipeline.Plan
	stages  []*engine.Stage
	inputs  map[string]int // topic -> stage that reads it
	topics  map[string][]engine.Message
	offsets map[string]int64
	clock   time.Time
}

// New returns a driver for plan with empty topics and the clock at Epoch.
func New(plan *pipeline.Plan) (*Driver, error) {
	d := &Driver{
		plan:    plan,
		inputs:  map[string]int{},
		topics:  map[string][]engine.Message{},
		offsets: map[string]int64{},
		clock:   Epoch,
	}
	for i, st := range plan.Stages {
		s, err := engine.NewStage(plan, i, d.emit, engine.WithRevision("test"))
		if err != nil {
			return nil, err
		}
		d.stages = append(d.stages, s)
		d.inputs[st.Input] = i
		for _, t := range st.Tables {
			d.inputs[t] = i
		}
	}
	return d, nil
}

// emit appends to a topic; a message for a repartition topic is processed by
// the stage that reads it straight away, depth first, as a single task would.
func (d *Driver) emit(ctx context.Context, m engine.Message) error {
	m.Offset = d.offsets[m.Topic]
	d.offsets[m.Topic]++
	d.topics[m.Topic] = append(d.topics[m.Topic], m)
	if i, ok := d.inputs[m.Topic]; ok && i > 0 {
		return d.stages[i].Process(ctx, m) // a panic here is caught by process, up the stack
	}
	return nil
}

// Produce writes m to the pipeline's source topic and processes it.
func (d *Driver) Produce(ctx context.Context, m engine.Message) error {
	return d.ProduceTo(ctx, d.plan.Source.Topic, m)
}

// ProduceTo writes m to topic, the source or a table a join reads, and
// processes it. The driver has one partition per topic, so a table is
// co-partitioned with its stream by construction.
func (d *Driver) ProduceTo(ctx context.Context, topic string, m engine.Message) error {
	stage, ok := d.inputs[topic]
	if !ok || (stage > 0 && !d.stages[stage].IsTable(topic)) {
		return fmt.Errorf("pipeline %s does not read topic %s", d.plan.Name, topic)
	}
	m.Topic = topic
	if m.Timestamp.IsZero() {
		m.Timestamp = d.clock
	}
	m.Offset = d.offsets[m.Topic]
	d.offsets[m.Topic]++
	d.topics[m.Topic] = append(d.topics[m.Topic], m)
	return d.process(ctx, stage, m)
}

// process runs a stage, turning an operator panic into an error: in a
// test, a panic is a failure to report, not a reason to stop the run.
func (d *Driver) process(ctx context.Context, stage int, m engine.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pipeline %s: operator panicked: %v", d.plan.Name, p)
		}
	}()
	if err := d.stages[stage].Process(ctx, m); err != nil {
		return fmt.Errorf("pipeline %s: %w", d.plan.Name, err)
	}
	return nil
}

// Advance moves the virtual clock forward, and with it the stream time of
// every task of a stateful stage: time passing with no records arriving,
// which closes the windows it passes. (Records move stream time to their
// own timestamps as they arrive.)
func (d *Driver) Advance(ctx context.Context, dur time.Duration) error {
	d.clock = d.clock.Add(dur)
	for i, s := range d.stages {
		if err := s.AdvanceBy(ctx, dur); err != nil {
			return fmt.Errorf("pipeline %s, stage %d: %w", d.plan.Name, i, err)
		}
	}
	return nil
}

// Clock returns the virtual time.
func (d *Driver) Clock() time.Time { return d.clock }

// Topic returns everything written to topic so far.
func (d *Driver) Topic(name string) []engine.Message { return d.topics[name] }
