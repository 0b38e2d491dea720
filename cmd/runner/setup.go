package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/embedded"
	"github.com/sluicehq/sluice/internal/kafkaconn"
	"github.com/sluicehq/sluice/internal/opsserver"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// defaultListen is the ops server's default address: loopback only, since
// /metrics and /status name pipelines and topics and nothing authenticates
// them. `--listen :9464` exposes it on every interface.
const defaultListen = "127.0.0.1:9464"

// passwordEnv holds the SASL password; it is never a flag, so it does not
// show in process listings or shell history.
const passwordEnv = "SLUICE_SASL_PASSWORD"

// runtimeConfig is the command line that `runner run` and `runner agent`
// share: Kafka, the runtime, the ops server and the logs. Whatever decides
// which pipelines run (a directory, a control plane) is the command's own.
type runtimeConfig struct {
	embeddedAddr   string
	embeddedAuto   bool
	listen         string
	commitInterval time.Duration
	instanceID     string
	shutdown       time.Duration
	session        time.Duration
	txnTimeout     time.Duration
	stuckAfter     time.Duration
	partitions     int
	replication    int
	logFormat      string
	logLevel       string
	stateDir       string
	idleTimeout    time.Duration
	// conn holds the brokers, TLS and SASL settings; the password comes
	// from the environment.
	conn kafkaconn.Config
}

// register defines the shared flags on fs, writing into c. stateDirHelp
// and stateDir are --state-dir's description and default, which differ
// between the commands.
func (c *runtimeConfig) register(fs *flag.FlagSet, stateDir, stateDirHelp string) {
	fs.Func("brokers", "comma-separated seed brokers `host:port,...`; empty starts the embedded Kafka cluster", func(s string) error {
		c.conn.Brokers = nil
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.conn.Brokers = append(c.conn.Brokers, b)
			}
		}
		return nil
	})
	fs.StringVar(&c.embeddedAddr, "embedded-addr", embedded.DefaultAddr, "address of the embedded Kafka cluster (without --brokers)")
	fs.BoolVar(&c.embeddedAuto, "embedded-auto-create-topics", false, "let clients of the embedded cluster create topics by producing to them")
	fs.StringVar(&c.listen, "listen", defaultListen, "`address` of the ops HTTP server (/metrics, /healthz, /readyz, /status); loopback only by default, since it has no authentication and names pipelines and topics: --listen :9464 serves every interface (as a Prometheus scrape from another host or pod needs)")
	fs.DurationVar(&c.commitInterval, "commit-interval", 100*time.Millisecond, "how long one transaction (or offset commit) collects records")
	fs.StringVar(&c.instanceID, "instance-id", "", "this runner's ID among runners sharing pipelines; part of transactional IDs (default random)")
	fs.DurationVar(&c.shutdown, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long pipelines get to finish in-flight work, commit and leave their groups")
	fs.DurationVar(&c.session, "session-timeout", 45*time.Second, "consumer-group session timeout")
	fs.DurationVar(&c.txnTimeout, "transaction-timeout", 10*time.Second, "how long the broker keeps a dead runner's open transaction before aborting it; with --session-timeout, bounds fail-over time under exactly-once")
	fs.DurationVar(&c.stuckAfter, "stuck-after", 8*time.Second, "restart a pipeline whose record has been in the operator chain this long; must be below --transaction-timeout")
	fs.IntVar(&c.partitions, "topic-partitions", 0, "partitions of output and DLQ topics created when missing (0: the source topic's count)")
	fs.IntVar(&c.replication, "topic-replication", 1, "replication factor of topics created when missing")
	fs.BoolVar(&c.conn.TLS, "tls", false, "connect to the brokers with TLS")
	fs.StringVar(&c.conn.TLSCAFile, "tls-ca", "", "PEM `file` of CAs to trust instead of the system's (implies --tls)")
	fs.StringVar(&c.conn.TLSCertFile, "tls-cert", "", "PEM client certificate `file` for mutual TLS (implies --tls)")
	fs.StringVar(&c.conn.TLSKeyFile, "tls-key", "", "PEM client key `file` for mutual TLS (implies --tls)")
	fs.BoolVar(&c.conn.TLSInsecureSkipVerify, "tls-insecure", false, "accept any broker certificate (testing only; implies --tls)")
	fs.StringVar(&c.conn.SASLMechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from $"+passwordEnv+")")
	fs.StringVar(&c.conn.SASLUser, "sasl-user", "", "SASL user")
	fs.StringVar(&c.stateDir, "state-dir", stateDir, stateDirHelp)
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 30*time.Second, "after this long without records, a stateful task's stream time moves on with processing time, so windows on quiet partitions close")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// validate checks what can be checked without touching the network.
func (c *runtimeConfig) validate() error {
	var errs []error
	if c.logFormat != "text" && c.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: use text or json", c.logFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.logLevel))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--commit-interval", c.commitInterval}, {"--shutdown-timeout", c.shutdown}, {"--session-timeout", c.session}, {"--transaction-timeout", c.txnTimeout}, {"--stuck-after", c.stuckAfter}, {"--idle-timeout", c.idleTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v must be positive", d.name, d.v))
		}
	}
	if c.stuckAfter >= c.txnTimeout {
		errs = append(errs, fmt.Errorf("--stuck-after %v must be shorter than --transaction-timeout %v", c.stuckAfter, c.txnTimeout))
	}
	if c.stateDir == "" {
		errs = append(errs, errors.New("--state-dir must not be empty"))
	}
	if c.partitions < 0 || c.partitions > 1<<31-1 {
		errs = append(errs, fmt.Errorf("--topic-partitions %d is out of range", c.partitions))
	}
	if c.replication <= 0 || c.replication > 1<<15-1 {
		errs = append(errs, fmt.Errorf("--topic-replication %d is out of range", c.replication))
	}
	if len(c.conn.Brokers) == 0 {
		k := c.conn
		if k.TLS || k.TLSCAFile != "" || k.TLSCertFile != "" || k.TLSKeyFile != "" || k.TLSInsecureSkipVerify || k.SASLMechanism != "" || k.SASLUser != "" {
			errs = append(errs, errors.New("TLS and SASL flags need --brokers (the embedded cluster is plaintext)"))
		}
	} else if _, err := c.conn.Options(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *runtimeConfig) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// kafkaRuntime is what the shared setup hands to a command: the running
// runtime, and, on the embedded cluster, how to create input topics.
type kafkaRuntime struct {
	rt *runtime.Runtime
	// createInputs is set on the embedded cluster only, where nothing else
	// would create the pipelines' input topics; it creates the missing
	// ones.
	createInputs func(context.Context, []*pipeline.Plan) error
	// brokers and kafka are the connection the runtime uses, for the
	// agent's own client (DLQ viewer and replays).
	brokers []string
	kafka   []kgo.Opt
}

// withRuntime is the setup `runner run` and `runner agent` share: it
// connects to Kafka (or starts the embedded cluster), builds the runtime
// and serves the ops endpoints, then calls body. body runs the command
// until ctx ends and returns nil then, or returns an error to fail the
// command. After a nil return withRuntime shuts down gracefully: /readyz
// answers 503, the pipelines finish in-flight work and commit within
// --shutdown-timeout, then the ops server and the cluster close.
func withRuntime(ctx context.Context, c *runtimeConfig, log *slog.Logger, body func(context.Context, *kafkaRuntime) error) error {
	brokers := c.conn.Brokers
	var kopts []kgo.Opt
	var cluster *embedded.Cluster
	if len(brokers) == 0 {
		var eopts []embedded.Opt
		if c.embeddedAuto {
			eopts = append(eopts, embedded.AutoCreateTopics())
		}
		var err error
		if cluster, err = embedded.Start(ctx, c.embeddedAddr, eopts...); err != nil {
			return fmt.Errorf("--embedded-addr: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.Addrs()
		addr := strings.Join(brokers, ",")
		log.Info(fmt.Sprintf("embedded Kafka listening on %s; kcat -b %s -L", addr, addr), "brokers", addr)
	} else {
		var err error
		if kopts, err = c.conn.Options(); err != nil {
			return err
		}
		log.Info("connecting to Kafka", "kafka", c.conn)
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt, err := runtime.New(
		runtime.Brokers(brokers...),
		runtime.KafkaOptions(kopts...),
		runtime.Logger(log),
		runtime.Registerer(metrics),
		runtime.CommitInterval(c.commitInterval),
		runtime.InstanceID(c.instanceID),
		runtime.TopicDefaults(int32(c.partitions), int16(c.replication)),
		runtime.SessionTimeout(c.session),
		runtime.TransactionTimeout(c.txnTimeout),
		runtime.StuckAfter(c.stuckAfter),
		runtime.StateDir(c.stateDir),
		runtime.IdleTimeout(c.idleTimeout),
	)
	if err != nil {
		return err
	}
	// Close runs on every return, after the ops server has stopped and
	// before the embedded cluster closes (defers run in reverse).
	closed := false
	closeRuntime := func() error {
		if closed {
			return nil
		}
		closed = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdown)
		defer cancel()
		return rt.Close(cctx)
	}
	defer func() { _ = closeRuntime() }()

	ops := opsserver.New(c.listen, rt, metrics, opsserver.Logger(log))
	ln, err := ops.Listen(ctx)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	opsDone := make(chan error, 1)
	go func() { opsDone <- ops.Serve(opsCtx, ln) }()
	defer func() {
		stopOps()
		<-opsDone
	}()
	log.Info("ops server listening", "addr", ln.Addr().String(), "endpoints", "/metrics /healthz /readyz /status")

	k := &kafkaRuntime{rt: rt, brokers: brokers, kafka: kopts}
	if cluster != nil {
		k.createInputs = func(ctx context.Context, plans []*pipeline.Plan) error {
			return createTopics(ctx, brokers, c.partitions, plans)
		}
	}
	if err := body(ctx, k); err != nil {
		return err
	}
	log.Info("shutting down: finishing in-flight work and committing", "timeout", c.shutdown.String())
	ops.Drain()
	start := time.Now()
	if err := closeRuntime(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("pipelines stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// createTopics creates the pipelines' missing input topics, so that a
// producer (kcat -P) can write to them as soon as the pipeline is up: each
// source, and each side input a join reads (a table compacted, as a table
// topic should be). They get the same partition count, so a join's topics
// are co-partitioned.
func createTopics(ctx context.Context, brokers []string, partitions int, plans []*pipeline.Plan) error {
	if len(plans) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	n := int32(-1) // the cluster's default
	if partitions > 0 {
		n = int32(partitions)
	}
	var streams, tables []string
	seen := map[string]bool{}
	add := func(to *[]string, t string) {
		if !seen[t] {
			seen[t] = true
			*to = append(*to, t)
		}
	}
	for _, p := range plans {
		add(&streams, p.Source.Topic)
		for _, s := range p.Steps {
			side, ok := s.Operator.(catalog.SideInputOperator)
			if !ok {
				continue
			}
			isTable := map[string]bool{}
			if tin, ok := side.(catalog.TableInputOperator); ok {
				for _, t := range tin.Tables() {
					isTable[t] = true
				}
			}
			for _, t := range side.SideInputs() {
				if isTable[t] {
					add(&tables, t)
				} else {
					add(&streams, t)
				}
			}
		}
	}
	adm := kadm.NewClient(cl)
	var errs []error
	for _, group := range []struct {
		topics  []string
		configs map[string]*string
	}{{streams, nil}, {tables, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}}} {
		if len(group.topics) == 0 {
			continue
		}
		resp, err := adm.CreateTopics(ctx, n, -1, group.configs, group.topics...)
		if err != nil {
			return err
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				errs = append(errs, fmt.Errorf("%s: %w", r.Topic, r.Err))
			}
		}
	}
	return errors.Join(errs...)
}
