// Command runner is Sluice's data-plane binary: it runs pipelines on Kafka
// from a directory (`runner run --pipelines DIR`) or as the control plane
// assigns them (`runner agent --control-plane URL`), runs pipeline tests in
// memory (`runner test DIR`) and prints compiled plans (`runner plan
// FILE`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/catalog/operators/script"
	"github.com/sluicehq/sluice/internal/demotraffic"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/pipeline"
)

const usage = `runner: Sluice's pipeline runner.

Usage:
  runner run --pipelines DIR [flags]
                            run every pipeline in DIR on Kafka (embedded Kafka
                            without --brokers), reloading changed files;
                            see runner run -h for the flags
  runner agent --control-plane URL [--bootstrap-token T] [--data-dir DIR] [flags]
                            run the pipelines the control plane assigns to
                            this runner (outbound HTTPS only), from the cache
                            in DIR while it is unreachable; the token can come
                            from $SLUICE_BOOTSTRAP_TOKEN instead; takes run's
                            Kafka, runtime and ops flags; see runner agent -h
  runner test [-v] DIR...   run every *_test.yaml under DIR against its pipeline, in memory
  runner plan FILE...       compile pipeline files and print their plans
  runner demo-traffic --brokers LIST [--seed N] [--topics-only]
                            produce the demo project's input (vans, sensors,
                            payments; about 20 records/s) until stopped, as
                            make dev does; --topics-only creates the topics
  runner version            print the version

Exit status: 0 when everything compiled and passed (run, agent: after a
clean shutdown on SIGTERM or SIGINT), 1 when a test failed, a file did not compile
or the runner failed, 2 for usage errors.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// config is the parsed command line.
type config struct {
	command string
	args    []string
	verbose bool
	// isolateScripts runs scripts in child processes with a hard memory
	// limit (see script.Isolate), so that no script can take the runner
	// and its other pipelines down. On by default; a record pays a round
	// trip to another process for it (docs/performance.md), which trusted
	// code may decline.
	isolateScripts bool
	// scriptProcesses caps the script processes alive at once.
	scriptProcesses int
	run             runConfig
	agent           agentConfig
	demo            demoConfig
}

// demoConfig is `runner demo-traffic`.
type demoConfig struct {
	brokers    string
	seed       uint64
	topicsOnly bool
}

// errFailed means the command ran and reported failures; main exits 1
// without printing more.
var errFailed = errors.New("failed")

func main() {
	// Scripts run in child processes of this binary (unless
	// --isolate-scripts=false); in such a child, this serves the script
	// and exits.
	script.ServeHostIfChild()
	cfg, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, errHelpCommand) {
		fmt.Fprint(os.Stdout, usage)
		return
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "runner:", err)
		}
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errFailed):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "runner:", err)
		os.Exit(1)
	}
}

// errHelpCommand is `runner help`: usage on stdout, exit 0.
var errHelpCommand = errors.New("help")

func parseArgs(args []string, stderr io.Writer) (config, error) {
	if len(args) == 0 {
		return config{}, errors.New("no command given")
	}
	cfg := config{command: args[0]}
	fs := flag.NewFlagSet("runner "+cfg.command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cfg.command {
	case "test":
		fs.BoolVar(&cfg.verbose, "v", false, "show each test's position and duration")
	case "run":
		cfg.run.register(fs)
	case "agent":
		cfg.agent.register(fs)
	case "demo-traffic":
		fs.StringVar(&cfg.demo.brokers, "brokers", "", "Kafka bootstrap servers, comma-separated")
		fs.Uint64Var(&cfg.demo.seed, "seed", 1, "the generator's seed: the same seed gives the same records")
		fs.BoolVar(&cfg.demo.topicsOnly, "topics-only", false, "create the demo's input topics and exit")
	case "plan", "version":
	case "help", "-h", "--help":
		return config{}, errHelpCommand
	default:
		return config{}, fmt.Errorf("unknown command %q", cfg.command)
	}
	if cfg.command != "version" && cfg.command != "demo-traffic" {
		fs.BoolVar(&cfg.isolateScripts, "isolate-scripts", true, "run scripts in child processes with a hard memory limit, so that no script can take the runner down; false runs them in this process, about 3x faster per record, for code you trust")
		fs.IntVar(&cfg.scriptProcesses, "script-processes", 16, "most script processes alive at once (each runs one record at a time of one script step)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return config{}, err
	}
	cfg.args = fs.Args()
	if cfg.command == "demo-traffic" {
		if cfg.demo.brokers == "" || len(fs.Args()) > 0 {
			return config{}, errors.New("demo-traffic takes --brokers and no arguments")
		}
		return cfg, nil
	}
	if cfg.command != "version" && cfg.scriptProcesses < 1 {
		return config{}, fmt.Errorf("--script-processes %d: at least 1 script process is needed", cfg.scriptProcesses)
	}
	if cfg.command == "run" {
		if len(cfg.args) > 0 {
			return config{}, fmt.Errorf("run takes no arguments (got %q); use --pipelines DIR", cfg.args)
		}
		cfg.run.conn.SASLPassword = os.Getenv(passwordEnv)
		if err := cfg.run.validate(); err != nil {
			return config{}, err
		}
	}
	if cfg.command == "agent" {
		if len(cfg.args) > 0 {
			return config{}, fmt.Errorf("agent takes no arguments (got %q)", cfg.args)
		}
		cfg.agent.conn.SASLPassword = os.Getenv(passwordEnv)
		cfg.agent.complete()
		if err := cfg.agent.validate(); err != nil {
			return config{}, err
		}
	}
	if (cfg.command == "test" || cfg.command == "plan") && len(cfg.args) == 0 {
		return config{}, fmt.Errorf("%s needs at least one path", cfg.command)
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if cfg.command == "demo-traffic" {
		log := slog.New(slog.NewTextHandler(stderr, nil))
		brokers := strings.Split(cfg.demo.brokers, ",")
		if cfg.demo.topicsOnly {
			return demotraffic.CreateTopics(ctx, log, brokers)
		}
		return demotraffic.Run(ctx, log, brokers, cfg.demo.seed)
	}
	reg := all.New()
	if cfg.isolateScripts {
		if err := script.Isolate(reg, script.HostConfig{Processes: cfg.scriptProcesses, Logger: slog.New(slog.NewTextHandler(stderr, nil))}); err != nil {
			return err
		}
	}
	switch cfg.command {
	case "run":
		return runPipelines(ctx, cfg.run, reg, stdout, stderr)
	case "agent":
		return runAgent(ctx, cfg.agent, reg, stderr)
	case "test":
		r := &driver.Runner{Registry: reg, Out: stdout, Verbose: cfg.verbose}
		sum, err := r.Run(ctx, cfg.args...)
		if err != nil {
			return err
		}
		if !sum.OK() {
			return errFailed
		}
		return nil
	case "plan":
		failed := false
		for _, f := range cfg.args {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			c := &pipeline.Compiler{Registry: reg, Files: os.DirFS(filepath.Dir(f))}
			p, err := c.Compile(f, data)
			if err != nil {
				fmt.Fprintln(stdout, err)
				failed = true
				continue
			}
			fmt.Fprint(stdout, p.Describe())
		}
		if failed {
			return errFailed
		}
		return nil
	case "version":
		fmt.Fprintln(stdout, "runner", version)
		return nil
	}
	return fmt.Errorf("unknown command %q", cfg.command)
}
