package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// A production principal often may read and write its topics but not
// create any: the topics are created beforehand by whoever owns the
// cluster. Such a runner must run its pipelines, which means not asking
// to create topics that exist (Kafka answers TOPIC_AUTHORIZATION_FAILED
// to a CreateTopics without the CREATE right, whether the topic exists or
// not). A topic that is really missing fails the pipeline with an error
// saying so. kfake enforces ACLs here, so this test always runs on it.
func TestTopicsExistWithoutCreateRight(t *testing.T) {
	allow := func(res kmsg.ACLResourceType, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.User("PLAIN", "runner", "runner-pw",
			allow(kmsg.ACLResourceTypeTopic, kmsg.ACLOperationRead),
			allow(kmsg.ACLResourceTypeTopic, kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeTopic, kmsg.ACLOperationDescribe),
			allow(kmsg.ACLResourceTypeGroup, kmsg.ACLOperationRead),
			allow(kmsg.ACLResourceTypeTransactionalId, kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeTransactionalId, kmsg.ACLOperationDescribe),
		))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	asAdmin := kgo.SASL(plain.Auth{User: "admin", Pass: "admin"}.AsMechanism())
	admin := kafkatest.Client(t, brokers, asAdmin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(admin).CreateTopics(ctx, 2, 1, nil, "acl-in", "acl-out", "acl.dlq", "acl2-in"); err != nil {
		t.Fatal(err)
	}

	rt := newRuntime(t, brokers, runtime.KafkaOptions(kgo.SASL(plain.Auth{User: "runner", Pass: "runner-pw"}.AsMechanism())))
	ok := runtime.Pipeline{Revision: "r1", Plan: plan(t, "acl", `  source: {topic: acl-in}
  steps:
    - map: {n: n}
  sink: {topic: acl-out}
  errors: {dlq: acl.dlq}
`)}
	missing := runtime.Pipeline{Revision: "r1", Plan: plan(t, "acl2", `  source: {topic: acl2-in}
  steps: []
  sink: {topic: acl2-out}
`)}
	if err := rt.Apply(context.Background(), []runtime.Pipeline{ok, missing}); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, rt, "acl", 2, 30*time.Second)
	if err := admin.ProduceSync(ctx, numbered("acl-in", 0, 3)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	read := kafkatest.Client(t, brokers, asAdmin, kgo.ConsumeTopics("acl-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < 3 && ctx.Err() == nil {
		got = append(got, read.PollFetches(ctx).Records()...)
	}
	if len(got) != 3 {
		t.Fatalf("read %d outputs, want 3", len(got))
	}
	kafkatest.Eventually(t, 30*time.Second, "acl2 failing on its missing output topic", func() bool {
		s := statusOf(t, rt, "acl2")
		return s.State == runtime.Failed && strings.Contains(s.Error, "topic acl2-out does not exist, and this runner's Kafka principal may not create it")
	})
}
