package database_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
	"github.com/sluicehq/sluice/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Replicas that start together race to migrate; the advisory lock must
// make exactly one of them apply each migration.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	const replicas = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
	)
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := database.Open(ctx, url, 2)
			if err != nil {
				t.Error(err)
				return
			}
			defer pool.Close()
			got, err := database.Migrate(ctx, pool, migrations.FS, nil)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			applied = append(applied, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(applied) == 0 {
		t.Fatal("no replica applied the migrations")
	}
	seen := map[string]int{}
	for _, v := range applied {
		seen[v]++
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("migration %s applied %d times", v, n)
		}
	}
	pool, err := database.Open(ctx, url, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(seen) {
		t.Errorf("schema_migrations has %d rows, want %d", rows, len(seen))
	}
}

// A failing migration rolls back whole and is reported with its name; the
// ones before it stay applied.
func TestMigrateFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewEmptyDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	files := fstest.MapFS{
		"0001_ok.sql":  {Data: []byte("CREATE TABLE a (x int);")},
		"0002_bad.sql": {Data: []byte("CREATE TABLE b (x int); SELECT nope FROM nowhere;")},
	}
	got, err := database.Migrate(ctx, pool, files, nil)
	if err == nil || len(got) != 1 || got[0] != "0001_ok" {
		t.Fatalf("Migrate = %v, %v; want [0001_ok] and an error", got, err)
	}
	if want := "0002_bad.sql"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('b') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("table b exists: the failed migration was not rolled back")
	}
}
