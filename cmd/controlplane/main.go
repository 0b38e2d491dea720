// Command controlplane is Sluice's control plane: the REST API, the git
// server, the runner protocol and the rollout reconciler over PostgreSQL
// (`controlplane serve`), and `controlplane dev`, which also starts a
// private PostgreSQL under .sluice/ and a runner for a one-command local
// platform.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sluicehq/sluice/catalog/operators/script"
)

const usage = `controlplane: Sluice's control plane.

Usage:
  controlplane serve [flags]   serve the API (/api/v1), git repositories (/git/) and
                               the runner protocol; needs DATABASE_URL (or --database-url)
  controlplane dev [flags]     like serve, but without DATABASE_URL starts a private
                               PostgreSQL under .sluice/postgres; on first run creates an
                               administrator, the project "playground" with an example
                               pipeline in its repository, an API token and the fleet
                               "dev"; starts a runner agent in that fleet on the
                               runner's embedded Kafka (or KAFKA_BROKERS)
  controlplane version         print the version

Run controlplane serve -h or controlplane dev -h for the flags. Every flag
can also be set by the environment variable named in its help.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Pipelines' scripts run in child processes of this binary (see
	// openControlPlane); in such a child, this serves the script and exits.
	script.ServeHostIfChild()
	cfg, err := parseArgs(os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, errHelp):
		fmt.Fprint(os.Stdout, usage)
		return
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills at once
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if cfg.memoryLimit > 0 {
		debug.SetMemoryLimit(cfg.memoryLimit)
	}
	if cfg.gcPercent > 0 {
		debug.SetGCPercent(cfg.gcPercent)
	}
	switch cfg.command {
	case "version":
		_, err := fmt.Fprintln(stdout, "controlplane", version)
		return err
	case "dev":
		return runDev(ctx, cfg, stdout, stderr)
	default:
		return runServe(ctx, cfg, stdout, stderr)
	}
}
