package agent

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/agentproto"
)

func TestPreviewRedactsAndCaps(t *testing.T) {
	on := &agentproto.RecordPreviews{Enabled: true, Redact: []string{"card.number", "items.sku", "email"}, MaxBytes: 4096}
	for _, tc := range []struct {
		name string
		in   string
		p    *agentproto.RecordPreviews
		key  bool
		want string // "" means no preview at all
	}{
		{"off", `{"email":"a@b"}`, nil, false, ""},
		{"disabled", `{"email":"a@b"}`, &agentproto.RecordPreviews{Redact: []string{"x"}}, false, ""},
		{"nested and arrays", `{"card":{"number":"4111","cvv":1},"items":[{"sku":"A"},{"sku":"B"}],"email":"a@b","n":1.50}`, on, false,
			`{"card":{"cvv":1,"number":"[redacted]"},"email":"[redacted]","items":[{"sku":"[redacted]"},{"sku":"[redacted]"}],"n":1.50}`},
		{"text with redact paths is not shown", `name=alice`, on, false, "[not JSON (10 bytes); not shown because redact paths are set]"},
		{"a plain key is shown", `alice`, on, true, "alice"},
		{"text without paths", `hello`, &agentproto.RecordPreviews{Enabled: true}, false, "hello"},
		{"binary", "\xff\x00", &agentproto.RecordPreviews{Enabled: true}, false, "/wA="},
		{"capped", strings.Repeat("é", 10), &agentproto.RecordPreviews{Enabled: true, MaxBytes: 5}, false, "éé"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := preview([]byte(tc.in), tc.p, tc.key)
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %+v, want none", got)
				}
				return
			}
			if got == nil || got.Text != tc.want || got.Bytes != len(tc.in) {
				t.Fatalf("got %+v, want %q", got, tc.want)
			}
		})
	}
	if p := effectivePreviews(&agentproto.RecordPreviews{Enabled: true, MaxBytes: 1 << 20}); p.MaxBytes != agentproto.MaxPreviewBytes {
		t.Fatalf("max bytes %d", p.MaxBytes)
	}
}

// With previews off a dead letter's report holds no key, no value and no
// value of a header other than sluice.* (nor of sluice.input, which
// encodes the record).
func TestDeadLetterReportWithoutPreviews(t *testing.T) {
	const marker = "SECRET-42"
	r := &kgo.Record{Topic: "p.dlq", Partition: 1, Offset: 7, Key: []byte(marker), Value: []byte(`{"x":"` + marker + `"}`),
		Headers: []kgo.RecordHeader{
			{Key: "trace", Value: []byte(marker)},
			{Key: "sluice.input", Value: []byte(marker)},
			{Key: "sluice.reason", Value: []byte("expression")},
			{Key: "sluice.source", Value: []byte("in/3/99")},
			{Key: "sluice.error", Value: []byte("a string is needed here, got int")},
		}}
	for _, p := range []*agentproto.RecordPreviews{nil, {Enabled: false, MaxBytes: 4096}} {
		dl := deadLetterReport(r, p)
		var b strings.Builder
		b.WriteString(dl.Reason + dl.Error + dl.SourceTopic + dl.KeyHash)
		for _, h := range dl.Headers {
			b.WriteString(h.Name)
			if h.Value != nil {
				b.WriteString(*h.Value)
			}
		}
		if strings.Contains(b.String(), marker) || dl.Key != nil || dl.Value != nil {
			t.Fatalf("the report holds record data: %+v", dl)
		}
		if dl.Reason != "expression" || dl.SourceTopic != "in" || dl.SourcePartition != 3 || dl.SourceOffset != 99 || dl.KeyHash == "" || len(dl.Headers) != 5 {
			t.Fatalf("dead letter %+v", dl)
		}
	}
	dl := deadLetterReport(r, &agentproto.RecordPreviews{Enabled: true, MaxBytes: 64})
	if dl.Key == nil || dl.Key.Text != marker || dl.Value == nil || *dl.Headers[0].Value != marker || dl.Headers[1].Value != nil {
		t.Fatalf("with previews: %+v", dl)
	}
}

// A replay found on disk as running was interrupted by a restart: it is
// reported failed and never carried out again; one found done keeps its
// outcome.
func TestReplayRememberedOnDisk(t *testing.T) {
	dir := dataDir(t.TempDir())
	r := newReplayer(dir, nil, func(string, ...any) {})
	if err := r.save(agentproto.ReplayOutcome{ID: "01a2-0001", State: agentproto.ReplayRunning}); err != nil {
		t.Fatal(err)
	}
	if err := r.save(agentproto.ReplayOutcome{ID: "01a2-0002", State: agentproto.ReplayDone, Replayed: 3}); err != nil {
		t.Fatal(err)
	}
	r2 := newReplayer(dir, nil, func(string, ...any) {})
	r2.set([]agentproto.ReplayRequest{{ID: "01a2-0001"}, {ID: "01a2-0002"}, {ID: "../etc"}})
	got := map[string]agentproto.ReplayOutcome{}
	for _, o := range r2.report() {
		got[o.ID] = o
	}
	if len(got) != 2 || got["01a2-0001"].State != agentproto.ReplayFailed || got["01a2-0002"].Replayed != 3 || len(r2.queue) != 0 {
		t.Fatalf("outcomes %+v, queue %d", got, len(r2.queue))
	}
}
