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

// passwordEnv holds the SASL password; it is never a flag, so it does not
// show in process listings or shell history.
const passwordEnv = "SLUICE_SASL_PASSWORD"

// runConfig is the command line of `runner run`.
type runConfig struct {
	pipelines      string
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
	reload         time.Duration
	logFormat      string
	logLevel       string
	stateDir       string
	idleTimeout    time.Duration
	// conn holds the brokers, TLS and SASL settings; the password comes
	// from the environment.
	conn kafkaconn.Config
}

// register defines run's flags on fs, writing into c.
func (c *runConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.pipelines, "pipelines", "", "directory of pipeline files (*.yaml except *_test.yaml); required")
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
	fs.StringVar(&c.listen, "listen", ":9464", "address of the ops HTTP server (/metrics, /healthz, /readyz, /status)")
	fs.DurationVar(&c.commitInterval, "commit-interval", 100*time.Millisecond, "how long one transaction (or offset commit) collects records")
	fs.StringVar(&c.instanceID, "instance-id", "", "this runner's ID among runners sharing pipelines; part of transactional IDs (default random)")
	fs.DurationVar(&c.shutdown, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long pipelines get to finish in-flight work, commit and leave their groups")
	fs.DurationVar(&c.session, "session-timeout", 45*time.Second, "consumer-group session timeout")
	fs.DurationVar(&c.txnTimeout, "transaction-timeout", 10*time.Second, "how long the broker keeps a dead runner's open transaction before aborting it; with --session-timeout, bounds fail-over time under exactly-once")
	fs.DurationVar(&c.stuckAfter, "stuck-after", 8*time.Second, "restart a pipeline whose record has been in the operator chain this long; must be below --transaction-timeout")
	fs.IntVar(&c.partitions, "topic-partitions", 0, "partitions of output and DLQ topics created when missing (0: the source topic's count)")
	fs.IntVar(&c.replication, "topic-replication", 1, "replication factor of topics created when missing")
	fs.DurationVar(&c.reload, "reload-interval", time.Second, "how often the pipelines directory is checked for changes")
	fs.BoolVar(&c.conn.TLS, "tls", false, "connect to the brokers with TLS")
	fs.StringVar(&c.conn.TLSCAFile, "tls-ca", "", "PEM `file` of CAs to trust instead of the system's (implies --tls)")
	fs.StringVar(&c.conn.TLSCertFile, "tls-cert", "", "PEM client certificate `file` for mutual TLS (implies --tls)")
	fs.StringVar(&c.conn.TLSKeyFile, "tls-key", "", "PEM client key `file` for mutual TLS (implies --tls)")
	fs.BoolVar(&c.conn.TLSInsecureSkipVerify, "tls-insecure", false, "accept any broker certificate (testing only; implies --tls)")
	fs.StringVar(&c.conn.SASLMechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from $"+passwordEnv+")")
	fs.StringVar(&c.conn.SASLUser, "sasl-user", "", "SASL user")
	fs.StringVar(&c.stateDir, "state-dir", ".sluice/state", "directory of the on-disk state of pipelines with `state: {store: disk}`; deleting it loses nothing (state is restored from the changelog topics)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 30*time.Second, "after this long without records, a stateful task's stream time moves on with processing time, so windows on quiet partitions close")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// validate checks what can be checked without touching the network.
func (c *runConfig) validate() error {
	var errs []error
	if c.pipelines == "" {
		errs = append(errs, errors.New("run needs --pipelines DIR"))
	}
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
	}{{"--commit-interval", c.commitInterval}, {"--shutdown-timeout", c.shutdown}, {"--session-timeout", c.session}, {"--reload-interval", c.reload}, {"--transaction-timeout", c.txnTimeout}, {"--stuck-after", c.stuckAfter}, {"--idle-timeout", c.idleTimeout}} {
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

func (c *runConfig) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runPipelines is `runner run`: it runs every pipeline under --pipelines
// until ctx ends, reloading changed files, then shuts down within
// --shutdown-timeout. stdout gets one summary line per pipeline started;
// stderr gets compile errors and the logs.
func runPipelines(ctx context.Context, c runConfig, reg *catalog.Registry, stdout, stderr io.Writer) error {
	log := c.logger(stderr)

	// Compile first: a broken file should fail the start before anything
	// listens or connects.
	dir := newPipelineDir(c.pipelines, reg)
	if _, errs, _, err := dir.scan(); err != nil {
		return fmt.Errorf("--pipelines: %w", err)
	} else if len(errs) > 0 {
		for _, fe := range errs {
			for _, m := range fe.messages() {
				fmt.Fprintln(stderr, m)
			}
		}
		return errFailed
	}

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

	r := &reloader{dir: dir, rt: rt, log: log, out: stdout, applyTimeout: c.shutdown, applied: map[string]string{}}
	if cluster != nil {
		r.createInputs = func(ctx context.Context, plans []*pipeline.Plan) error {
			return createTopics(ctx, brokers, c.partitions, plans)
		}
	}
	r.apply(ctx)

	t := time.NewTicker(c.reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down: finishing in-flight work and committing", "timeout", c.shutdown.String())
			ops.Drain()
			start := time.Now()
			if err := closeRuntime(); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			log.Info("pipelines stopped", "took", time.Since(start).Round(time.Millisecond).String())
			return nil
		case <-t.C:
			changed, errs, resets, err := dir.scan()
			if err != nil {
				log.Error("reading the pipelines directory", "dir", c.pipelines, "err", err)
				continue
			}
			for _, fe := range errs {
				prev := "no previous revision"
				if pf := dir.files[fe.file]; pf != nil && pf.good != nil {
					prev = "previous revision " + pf.good.Revision + " keeps running"
				}
				for _, m := range fe.messages() {
					log.Error("pipeline file not applied; "+prev, "file", fe.file, "err", m)
				}
			}
			for _, m := range resets {
				log.Warn(m)
			}
			if changed {
				r.apply(ctx)
			}
		}
	}
}

// reloader applies the directory's good revisions to the runtime and
// reports what changed.
type reloader struct {
	dir          *pipelineDir
	rt           *runtime.Runtime
	log          *slog.Logger
	out          io.Writer
	applyTimeout time.Duration
	// applied maps pipeline name to the revision last applied.
	applied map[string]string
	// createInputs, when set, creates missing input topics first (the
	// embedded cluster, where nothing else would create them).
	createInputs func(context.Context, []*pipeline.Plan) error
}

func (r *reloader) apply(ctx context.Context) {
	desired := r.dir.desired()
	// Stopping a changed pipeline finishes its in-flight work; give it the
	// shutdown timeout even when a signal arrives meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.applyTimeout)
	defer cancel()
	if r.createInputs != nil {
		var plans []*pipeline.Plan
		for _, p := range desired {
			if r.applied[p.Plan.Name] != p.Revision {
				plans = append(plans, p.Plan)
			}
		}
		if err := r.createInputs(actx, plans); err != nil {
			r.log.Warn("creating input topics on the embedded cluster", "err", err)
		}
	}
	if err := r.rt.Apply(actx, desired); err != nil {
		r.log.Error("applying pipelines", "err", err)
	}
	next := map[string]string{}
	for _, p := range desired {
		next[p.Plan.Name] = p.Revision
		switch prev, ok := r.applied[p.Plan.Name]; {
		case !ok:
			fmt.Fprintln(r.out, summary(p))
			r.log.Info("pipeline started", "pipeline", p.Plan.Name, "revision", p.Revision, "file", p.Plan.File)
		case prev != p.Revision:
			fmt.Fprintln(r.out, summary(p))
			r.log.Info("pipeline updated", "pipeline", p.Plan.Name, "revision", p.Revision, "previous", prev, "file", p.Plan.File)
		}
	}
	for name, rev := range r.applied {
		if _, ok := next[name]; !ok {
			fmt.Fprintf(r.out, "pipeline %s (rev %s): removed\n", name, rev)
			r.log.Info("pipeline removed", "pipeline", name, "revision", rev)
		}
	}
	r.applied = next
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
