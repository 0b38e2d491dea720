package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/catalog/operators/script"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/migrations"
	"github.com/sluicehq/sluice/provisioning/terraform"
)

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// controlPlane is a migrated database and an API server ready to serve.
type controlPlane struct {
	pool   *pgxpool.Pool
	api    *api.Server
	gitops *gitops
	fleets *terraform.Reconciler
	log    *slog.Logger
}

func openControlPlane(ctx context.Context, cfg config, log *slog.Logger) (*controlPlane, error) {
	pool, err := database.Open(ctx, cfg.databaseURL, int32(cfg.maxConns))
	if err != nil {
		return nil, err
	}
	applied, err := database.Migrate(ctx, pool, migrations.FS, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("database ready", "migrations_applied", len(applied))
	reg := all.New()
	// Every compile here (API revisions, push validation, deploys, the
	// IDE's checks) runs pushed code: scripts run in child processes with
	// a hard memory limit, so that none can take this process down.
	if err := script.Isolate(reg, script.HostConfig{Logger: log}); err != nil {
		pool.Close()
		return nil, err
	}
	g, err := newGitOps(pool, reg, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	srv, err := api.New(api.Config{
		Pool: pool, Registry: reg, Logger: log, Rollback: g.rollback, Repository: ideRepository{g},
		SecureCookies: strings.HasPrefix(cfg.publicURL, "https://"), TrustProxy: cfg.trustProxy,
		MaxBodyBytes: cfg.maxBodyBytes, SessionTTL: cfg.sessionTTL, LoginFailures: cfg.loginFailures,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := g.attach(srv, log); err != nil {
		pool.Close()
		return nil, err
	}
	fleets, err := newProvisioning(ctx, cfg, pool, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &controlPlane{pool: pool, api: srv, gitops: g, fleets: fleets, log: log}, nil
}

func (cp *controlPlane) Close() { cp.pool.Close() }

// serve serves until ctx ends, then drains requests for up to wait.
func (cp *controlPlane) serve(ctx context.Context, l net.Listener, wait, sweep time.Duration) error {
	cp.gitops.run(ctx)
	go func() { _ = cp.fleets.Run(ctx) }()
	srv := &http.Server{
		Handler:           cp.gitops.handler(cp.api),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cp.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	ticker := time.NewTicker(sweep)
	defer ticker.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-ticker.C:
			if err := cp.api.Sweep(ctx); err != nil && ctx.Err() == nil {
				cp.log.Warn("sweep expired records", "err", err)
			}
		case <-ctx.Done():
			cp.log.Info("shutting down", "timeout", wait)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
	}
}

func runServe(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	cp, err := openControlPlane(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cp.Close()
	if cfg.adminPassword != "" {
		b, err := api.RunBootstrap(ctx, cp.pool, api.Bootstrap{AdminEmail: cfg.adminEmail, AdminPassword: cfg.adminPassword})
		if err != nil {
			return fmt.Errorf("create the first administrator: %w", err)
		}
		if b.Created {
			log.Info("created the first administrator", "email", cfg.adminEmail)
		}
	} else if n, err := countUsers(ctx, cp.pool); err == nil && n == 0 {
		log.Warn("no users yet: restart with SLUICE_ADMIN_PASSWORD (and SLUICE_ADMIN_EMAIL) set to create the first administrator")
	}
	l, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", l.Addr().String(), "api", "http://"+l.Addr().String()+"/api/v1")
	fmt.Fprintf(stdout, "controlplane: serving http://%s/api/v1\n", l.Addr())
	return cp.serve(ctx, l, cfg.shutdownWait, cfg.sweepInterval)
}

func countUsers(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n)
	return n, err
}
