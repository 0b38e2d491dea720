package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/pgcluster"
)

// credentialsFile keeps the first run's generated secrets for the local
// developer (mode 0600, under the data directory): the database keeps only
// their hashes, and `make dev` should still tell you how to log in the
// second time.
const credentialsFile = "credentials"

func runDev(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	var dbNote string
	if cfg.databaseURL == "" {
		dir := filepath.Join(cfg.dataDir, "postgres")
		fmt.Fprintf(stdout, "controlplane dev: starting a private PostgreSQL in %s ...\n", dir)
		pgLog, err := openLog(filepath.Join(cfg.dataDir, "postgres.log"))
		if err != nil {
			return err
		}
		defer pgLog.Close()
		pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true, Log: pgLog})
		if err != nil {
			return fmt.Errorf("%w\n(PostgreSQL's log: %s)", err, pgLog.Name())
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pg.Stop(sctx); err != nil {
				log.Warn("stop PostgreSQL", "err", err)
			}
			fmt.Fprintln(stdout, "controlplane dev: PostgreSQL stopped")
		}()
		if err := pg.CreateDatabase(ctx, "sluice", ""); err != nil && !pgcluster.IsDuplicateDatabase(err) {
			return err
		}
		cfg.databaseURL = pg.URL("sluice")
		dbNote = fmt.Sprintf("private PostgreSQL in %s (psql -h %s -p %d -U sluice sluice; log in %s)",
			dir, pg.SocketDir(), pg.Port(), pgLog.Name())
	} else {
		dbNote = "DATABASE_URL"
	}
	cp, err := openControlPlane(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cp.Close()
	b, err := api.RunBootstrap(ctx, cp.pool, api.Bootstrap{
		AdminEmail: cfg.adminEmail, AdminPassword: cfg.adminPassword, Org: "default", Project: "playground", Token: true,
	})
	if err != nil {
		return fmt.Errorf("first-run setup: %w", err)
	}
	credPath := filepath.Join(cfg.dataDir, credentialsFile)
	if b.Created {
		creds := fmt.Sprintf("SLUICE_ADMIN_EMAIL=%s\nSLUICE_ADMIN_PASSWORD=%s\nSLUICE_PROJECT_ID=%s\nSLUICE_TOKEN=%s\n",
			cfg.adminEmail, b.Password, b.ProjectID, b.TokenSecret)
		if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(credPath, []byte(creds), 0o600); err != nil {
			return err
		}
	}
	d, err := setUpDev(ctx, cp, "default", "playground")
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("%w (is another control plane running? pick another address with --listen)", err)
	}
	base := "http://" + l.Addr().String()
	kafka, runnerLog := cfg.embeddedAddr, "not started (--no-runner)"
	if cfg.kafkaBrokers != "" {
		kafka = cfg.kafkaBrokers
	}
	if !cfg.noRunner {
		// The runner talks to the API as soon as it starts; the listener is
		// open already, so its first requests wait for serve below.
		var exited <-chan struct{}
		if exited, runnerLog, err = d.startRunner(ctx, cp, cfg, base); err != nil {
			return err
		}
		defer func() {
			<-exited
			fmt.Fprintln(stdout, "controlplane dev: runner stopped")
		}()
	}
	fmt.Fprintf(stdout, "\nSluice control plane (dev) is up.\n\n")
	fmt.Fprintf(stdout, "  URL:        %s\n", base)
	fmt.Fprintf(stdout, "  API:        %s/api/v1   (OpenAPI: %s/api/v1/openapi.json)\n", base, base)
	fmt.Fprintf(stdout, "  Database:   %s\n", dbNote)
	if b.Created {
		fmt.Fprintf(stdout, "  Login:      %s / %s\n", cfg.adminEmail, b.Password)
		fmt.Fprintf(stdout, "  API token:  %s   (owner of project \"playground\")\n", b.TokenSecret)
		fmt.Fprintf(stdout, "              These are shown once and saved in %s (mode 0600).\n", credPath)
	} else {
		fmt.Fprintf(stdout, "  Login:      %s; first-run credentials are in %s\n", cfg.adminEmail, credPath)
	}
	fmt.Fprintf(stdout, "  Git:        %s/git/default/playground.git (an API token is the password)\n", base)
	printQuickStart(stdout, base, b.TokenSecret, credPath, kafka, runnerLog)
	fmt.Fprintf(stdout, "\nCtrl-C stops the runner, the control plane and PostgreSQL.\n")
	return cp.serve(ctx, l, cfg.shutdownWait, cfg.sweepInterval)
}

func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
}
