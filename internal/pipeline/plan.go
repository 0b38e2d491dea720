package pipeline

import (
	"regexp"

	"github.com/sluicehq/sluice/catalog"
)

var stepNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,40}$`)

// plan splits the steps into stages. It tracks what the records are keyed
// and partitioned by: a stateful step needs its input partitioned by the key
// it groups on, and where that is not so already (the source key was
// computed, a rekey came before, or the step groups by its own key) a
// repartition stage is inserted, as Kafka Streams does after selectKey.
func (c *Compiler) plan(p *Plan) {
	// partitioned: records sit in the partition their current key maps to.
	partitioned := p.Source.Key == nil || p.Source.PartitionedByKey
	curKey := ""
	if p.Source.Key != nil {
		curKey = p.Source.Key.Source()
	}
	cur := &Stage{Index: 0, Input: p.Source.Topic}
	p.Stages = []*Stage{cur}
	for _, s := range p.Steps {
		sameKey := s.GroupKey == nil || s.GroupKey.Source() == curKey
		if s.Stateful && (!partitioned || !sameKey) {
			topic := p.Name + "-" + s.Name + "-repartition"
			cur.Repartition = &Repartition{Topic: topic, Key: s.GroupKey, For: s.Name}
			cur = &Stage{Index: len(p.Stages), Input: topic}
			p.Stages = append(p.Stages, cur)
			partitioned = true
			if s.GroupKey != nil {
				s.KeyChange = s.GroupKey.Source()
				curKey = s.KeyChange
			}
		}
		if s.KeyChange != "" && !s.Stateful {
			partitioned = false
			curKey = s.KeyChange
		}
		cur.Steps = append(cur.Steps, s)
		if t, ok := s.Operator.(catalog.SideInputOperator); ok {
			cur.Tables = append(cur.Tables, t.SideInputs()...)
		}
	}
}
