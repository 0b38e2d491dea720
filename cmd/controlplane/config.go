package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is the parsed command line and environment.
type config struct {
	command       string
	listen        string
	databaseURL   string
	publicURL     string
	dataDir       string // dev: where the private PostgreSQL and credentials live
	adminEmail    string
	adminPassword string // serve: SLUICE_ADMIN_PASSWORD creates the first administrator
	maxConns      int
	maxBodyBytes  int64
	sessionTTL    time.Duration
	trustProxy    bool
	logFormat     string
	logLevel      slog.Level
	shutdownWait  time.Duration
	sweepInterval time.Duration
	loginFailures int
	// Provisioning: the terraform (or tofu) binary, the fleets' working
	// directories, and (serve and dev) the runner the local module starts.
	terraformPath string
	fleetsDir     string
	// memoryLimit is the Go runtime's soft memory limit (0: leave it to
	// GOMEMLIMIT). Project members' scripts do not count against it: they
	// run in child processes with their own limits (script.Isolate).
	memoryLimit int64
	// gcPercent is the Go runtime's GC target (0: leave it to GOGC): the
	// heap grows this much over what the last collection kept before the
	// next one. The control plane's live heap is small (about 8 MiB with
	// 200 runners) and most of what it allocates is request garbage, so 50
	// keeps its resident memory about 4 MiB lower than Go's default of 100
	// for collections too small to show in its CPU (docs/performance.md).
	gcPercent int
	// dev only: the runner agent it starts.
	runnerPath   string
	runnerListen string
	noRunner     bool
	kafkaBrokers string
	embeddedAddr string
	// dev only: the demo project's generated traffic.
	noDemoTraffic bool
	demoSeed      uint64
}

var errHelp = errors.New("help")

// parseArgs reads flags, with defaults from the environment (getenv), so a
// container can be configured either way; flags win.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	if len(args) == 0 {
		return cfg, errors.New("no command")
	}
	cfg.command = args[0]
	switch cfg.command {
	case "help", "-h", "--help":
		return cfg, errHelp
	case "version":
		return cfg, nil
	case "serve", "dev":
	default:
		return cfg, fmt.Errorf("unknown command %q", cfg.command)
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("controlplane "+cfg.command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", env("SLUICE_LISTEN", "127.0.0.1:8080"), "address to serve on (SLUICE_LISTEN)")
	fs.StringVar(&cfg.databaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL); dev starts its own when empty")
	fs.StringVar(&cfg.publicURL, "public-url", getenv("SLUICE_PUBLIC_URL"), "URL users reach the control plane at (SLUICE_PUBLIC_URL); https makes session cookies Secure")
	fs.StringVar(&cfg.dataDir, "data-dir", env("SLUICE_DATA_DIR", ".sluice"), "dev: directory for the private PostgreSQL and first-run credentials (SLUICE_DATA_DIR)")
	fs.StringVar(&cfg.adminEmail, "admin-email", env("SLUICE_ADMIN_EMAIL", "admin@sluice.local"), "email of the first administrator, created when there are no users (SLUICE_ADMIN_EMAIL)")
	maxConns := fs.Int("max-conns", atoi(getenv("SLUICE_DB_MAX_CONNS"), 20), "PostgreSQL connections per process (SLUICE_DB_MAX_CONNS)")
	maxBody := fs.Int64("max-body-bytes", int64(atoi(getenv("SLUICE_MAX_BODY_BYTES"), 1<<20)), "request body limit (SLUICE_MAX_BODY_BYTES)")
	fs.DurationVar(&cfg.sessionTTL, "session-ttl", duration(getenv("SLUICE_SESSION_TTL"), 12*time.Hour), "how long a login lasts (SLUICE_SESSION_TTL)")
	fs.IntVar(&cfg.loginFailures, "login-failures", atoi(getenv("SLUICE_LOGIN_FAILURES"), 10), "failed logins per account in 15 minutes before it is locked for the rest of them (SLUICE_LOGIN_FAILURES)")
	fs.BoolVar(&cfg.trustProxy, "trust-proxy", getenv("SLUICE_TRUST_PROXY") == "true", "take client addresses from X-Forwarded-For (SLUICE_TRUST_PROXY=true)")
	fs.StringVar(&cfg.logFormat, "log-format", env("SLUICE_LOG_FORMAT", "text"), "text or json (SLUICE_LOG_FORMAT)")
	level := fs.String("log-level", env("SLUICE_LOG_LEVEL", "info"), "debug, info, warn or error (SLUICE_LOG_LEVEL)")
	fs.DurationVar(&cfg.shutdownWait, "shutdown-timeout", duration(getenv("SLUICE_SHUTDOWN_TIMEOUT"), 10*time.Second), "how long SIGTERM waits for requests in flight (SLUICE_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&cfg.sweepInterval, "sweep-interval", 10*time.Minute, "how often expired sessions and idempotency records are deleted")
	fs.StringVar(&cfg.terraformPath, "terraform", getenv("SLUICE_TERRAFORM"), "terraform or tofu binary for fleet runs (SLUICE_TERRAFORM); default: terraform, then tofu, on PATH, then .tools/bin")
	fs.StringVar(&cfg.fleetsDir, "fleets-dir", getenv("SLUICE_FLEETS_DIR"), "directory of the fleets' Terraform working directories and local runners (SLUICE_FLEETS_DIR; default DATA-DIR/fleets)")
	if cfg.command == "serve" {
		fs.StringVar(&cfg.runnerPath, "runner", getenv("SLUICE_RUNNER"), "runner binary that fleets of the local module start (SLUICE_RUNNER; default: runner beside this binary, then $PATH)")
	}
	memLimit := fs.String("memory-limit", env("SLUICE_MEMORY_LIMIT", "384MiB"), "soft memory limit of the process, like 384MiB or 2GiB (SLUICE_MEMORY_LIMIT); GOMEMLIMIT, when set, wins. Scripts that project members push run in child processes with their own hard limits, not under this one")
	gcPercent := fs.Int("gc-percent", atoi(getenv("SLUICE_GC_PERCENT"), 50), "the Go runtime's GC target in percent (SLUICE_GC_PERCENT); GOGC, when set, wins")
	if cfg.command == "dev" {
		fs.StringVar(&cfg.runnerPath, "runner", "", "dev: the runner binary to start as the dev fleet's agent (default: bin/runner beside this binary, then $PATH)")
		fs.StringVar(&cfg.runnerListen, "runner-listen", "127.0.0.1:9464", "dev: address of the runner's ops server (/metrics, /status)")
		fs.BoolVar(&cfg.noRunner, "no-runner", false, "dev: start no runner (run `runner agent` yourself)")
		fs.StringVar(&cfg.kafkaBrokers, "kafka-brokers", getenv("KAFKA_BROKERS"), "dev: Kafka for the runner (KAFKA_BROKERS); empty runs the runner's embedded Kafka")
		// The runner's embedded cluster's default address (internal/embedded),
		// named here so the control plane does not link Kafka.
		fs.StringVar(&cfg.embeddedAddr, "embedded-addr", "127.0.0.1:9092", "dev: address of the runner's embedded Kafka")
		fs.BoolVar(&cfg.noDemoTraffic, "no-demo-traffic", false, "dev: do not generate traffic for the demo project's pipelines (about 20 records/s of vans, sensors and payments)")
		fs.Uint64Var(&cfg.demoSeed, "demo-seed", 1, "dev: seed of the demo traffic generator; one seed gives one sequence of records")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.adminPassword = getenv("SLUICE_ADMIN_PASSWORD")
	if getenv("GOMEMLIMIT") == "" {
		n, err := parseSize(*memLimit)
		if err != nil || n < 64<<20 {
			return cfg, fmt.Errorf("--memory-limit %q: use a size of at least 64MiB, like 384MiB or 2GiB", *memLimit)
		}
		cfg.memoryLimit = n
	}
	if getenv("GOGC") == "" {
		if *gcPercent < 10 || *gcPercent > 1000 {
			return cfg, fmt.Errorf("--gc-percent %d: use 10 to 1000 (Go's default is 100)", *gcPercent)
		}
		cfg.gcPercent = *gcPercent
	}
	cfg.maxConns, cfg.maxBodyBytes = *maxConns, *maxBody
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return cfg, fmt.Errorf("--log-format must be text or json, not %q", cfg.logFormat)
	}
	if cfg.command == "serve" && cfg.databaseURL == "" {
		return cfg, errors.New("serve needs DATABASE_URL or --database-url (controlplane dev starts its own PostgreSQL)")
	}
	if cfg.publicURL != "" {
		u, err := url.Parse(cfg.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("--public-url %q must be an http or https URL", cfg.publicURL)
		}
	}
	if cfg.maxConns < 2 {
		return cfg, errors.New("--max-conns must be at least 2")
	}
	return cfg, nil
}

// parseSize reads a size with a binary unit (KiB, MiB, GiB) or plain bytes.
func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 || n > (1<<62)/u.mult {
				return 0, fmt.Errorf("size %q", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("size %q", s)
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func duration(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}
