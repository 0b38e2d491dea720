package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/agent"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

func TestAgentUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, "--control-plane"},
		{[]string{"agent", "--control-plane", "https://cp", "extra"}, "no arguments"},
		{[]string{"agent", "--control-plane", "https://cp", "--data-dir", ""}, "--data-dir must not be empty"},
		{[]string{"agent", "--control-plane", "https://cp", "--pipelines", "d"}, "not defined"},
		{[]string{"agent", "--control-plane", "https://cp", "--reload-interval", "1s"}, "not defined"},
		{[]string{"agent", "--control-plane", "https://cp", "--tls"}, "need --brokers"},
		{[]string{"agent", "--control-plane", "https://cp", "--commit-interval", "0s"}, "--commit-interval"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			_, err := parseArgs(c.args, &out)
			if err == nil || !strings.Contains(err.Error()+out.String(), c.want) {
				t.Fatalf("parseArgs(%q) = %v (%s), want an error mentioning %q", c.args, err, out.String(), c.want)
			}
		})
	}

	// The token comes from the environment unless given as a flag, and
	// the state directory defaults to one under the data directory.
	t.Setenv(bootstrapTokenEnv, "slb_from-env")
	cfg, err := parseArgs([]string{"agent", "--control-plane", "https://cp", "--data-dir", "/var/lib/sluice"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.agent.bootstrapToken != "slb_from-env" || cfg.agent.stateDir != "/var/lib/sluice/state" {
		t.Errorf("parsed %+v", cfg.agent)
	}
	cfg, err = parseArgs([]string{"agent", "--control-plane", "https://cp", "--bootstrap-token", "slb_flag", "--state-dir", "/s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.agent.bootstrapToken != "slb_flag" || cfg.agent.stateDir != "/s" {
		t.Errorf("parsed %+v", cfg.agent)
	}
}

// agentPeer is a minimal agentproto control plane: one registration, one
// generation with one bundle, and the status reports it receives.
type agentPeer struct {
	mu      sync.Mutex
	refuse  bool // answer every registration 401
	reports []agentproto.StatusReport
}

func (p *agentPeer) handler(t *testing.T, bundle []byte, asg agentproto.Assignment) http.Handler {
	const cred = "slr_cmd-test"
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentproto.RegisterPath, func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse || r.Header.Get("Authorization") != "Bearer slb_cmd-test" {
			http.Error(w, "spent", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(agentproto.RegisterResponse{RunnerID: "r1", FleetID: "f1", Credential: cred})
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+cred {
				http.Error(w, "who", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+agentproto.AssignmentsPath, authed(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("generation") == "1" { // unchanged: hold the poll a little
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
		}
		_ = json.NewEncoder(w).Encode(agentproto.Assignments{Generation: 1, Pipelines: []agentproto.Assignment{asg}})
	}))
	mux.HandleFunc("GET "+agentproto.BundlesPath+asg.Digest, authed(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bundle) }))
	mux.HandleFunc("POST "+agentproto.StatusPath, authed(func(w http.ResponseWriter, r *http.Request) {
		var rep agentproto.StatusReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			t.Errorf("status report: %v", err)
		}
		p.mu.Lock()
		p.reports = append(p.reports, rep)
		p.mu.Unlock()
	}))
	return mux
}

func (p *agentPeer) processed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.reports); n > 0 && len(p.reports[n-1].Pipelines) == 1 {
		return p.reports[n-1].Pipelines[0].Processed
	}
	return 0
}

// `runner agent` end to end in process: on the embedded cluster it
// registers, creates the assigned pipeline's input topic (as `runner run`
// does), runs the pipeline, reports its counts and exits cleanly when
// told to; a refused bootstrap token with nothing cached fails the
// command with the reason.
func TestAgentCommand(t *testing.T) {
	b := &agentproto.Bundle{Pipeline: "scale", Path: "pipelines/scale.yaml", Commit: "abc", Files: map[string][]byte{
		"scale.yaml": []byte(strings.NewReplacer("topic: in", "topic: agent-in", "topic: out", "topic: agent-out").Replace(pipelineV1)),
	}}
	data, digest, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	peer := &agentPeer{}
	srv := httptest.NewServer(peer.handler(t, data, agentproto.Assignment{Name: "scale", Revision: 1, Digest: digest, Group: "sluice-cmd-scale"}))
	defer srv.Close()

	kafka := freePort(t)
	dir := t.TempDir()
	t.Setenv(bootstrapTokenEnv, "slb_cmd-test")
	cfg, err := parseArgs([]string{"agent", "--control-plane", srv.URL, "--data-dir", dir, "--embedded-addr", kafka,
		"--listen", freePort(t), "--commit-interval", "50ms", "--shutdown-timeout", "10s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, &logs, &logs) }()

	brokers := []string{kafka}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	eventually(t, 20*time.Second, "the input topic created on the embedded cluster", func() bool {
		td, err := adm.ListTopics(context.Background(), "agent-in")
		return err == nil && td.Has("agent-in")
	}, logs.String)
	var in []*kgo.Record
	for i := range 20 {
		in = append(in, &kgo.Record{Topic: "agent-in", Value: fmt.Appendf(nil, `{"n":%d}`, i)})
	}
	kafkatest.Produce(t, brokers, in...)
	if outs := kafkatest.ReadCommitted(t, brokers, "agent-out", 20, 30*time.Second); len(outs) != 20 {
		t.Fatalf("read %d outputs, want 20\n%s", len(outs), logs.String())
	}
	eventually(t, 10*time.Second, "a status report with the 20 records processed", func() bool { return peer.processed() == 20 }, logs.String)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runner agent returned %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("runner agent did not stop\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "slb_cmd-test") || strings.Contains(logs.String(), "slr_cmd-test") {
		t.Errorf("a secret is in the log:\n%s", logs.String())
	}

	// A spent token, no credential, nothing cached: nothing to run, so the
	// command fails and says why.
	peer.mu.Lock()
	peer.refuse = true
	peer.mu.Unlock()
	cfg, err = parseArgs([]string{"agent", "--control-plane", srv.URL, "--data-dir", t.TempDir(), "--embedded-addr", freePort(t), "--listen", freePort(t)}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	var logs2 syncBuffer
	if err := run(ctx2, cfg, &logs2, &logs2); !errors.Is(err, agent.ErrBootstrapRefused) {
		t.Fatalf("runner agent with a refused token returned %v, want ErrBootstrapRefused\n%s", err, logs2.String())
	}
}
