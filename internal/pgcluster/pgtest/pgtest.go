// Package pgtest gives tests a real, throwaway PostgreSQL: one private
// cluster per test binary (started on first use, stopped by Main) and a
// fresh database per test, copied from a template that has the control
// plane's migrations applied.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster"
	"github.com/sluicehq/sluice/migrations"
)

const template = "sluice_template"

var (
	once    sync.Once
	cluster *pgcluster.Cluster
	dir     string
	initErr error
	seq     atomic.Int64
)

// Main runs the tests, stops the cluster and exits. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests and stops the cluster, returning the exit code, for
// a TestMain with its own cleanup.
func Run(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = cluster.Stop(ctx)
		cancel()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
		_ = os.Remove(dir + ".log")
	}
	return code
}

// Cluster returns the test binary's cluster, starting it on first use.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if dir, initErr = os.MkdirTemp("", "sluice-pg-"); initErr != nil {
			return
		}
		log, _ := os.Create(dir + ".log")
		if cluster, initErr = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Log: log}); initErr != nil {
			return
		}
		if initErr = cluster.CreateDatabase(ctx, template, ""); initErr != nil {
			return
		}
		pool, err := database.Open(ctx, cluster.URL(template), 2)
		if err != nil {
			initErr = err
			return
		}
		_, initErr = database.Migrate(ctx, pool, migrations.FS, nil)
		pool.Close()
	})
	if initErr != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", initErr)
	}
	return cluster
}

// NewDatabase creates an empty, migrated database for this test and
// returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, name, template); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return c.URL(name)
}

// NewEmptyDatabase creates a database without migrations (to test them).
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("empty_%d_%d", os.Getpid(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, name, ""); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return c.URL(name)
}
