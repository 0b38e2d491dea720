// Package pgcluster starts a private PostgreSQL server from the system's
// initdb and postgres binaries: a throwaway cluster for tests and the
// development cluster that `controlplane dev` keeps under .sluice/postgres.
//
// The server listens only on a Unix socket in its own directory, so two
// clusters (or a system PostgreSQL) never collide on a port. PostgreSQL
// refuses to run as root; when we are root the cluster runs as the system's
// `postgres` user and its directory is handed to that user.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options configure a cluster.
type Options struct {
	// Dir holds the data directory (Dir/data) and the socket. It is created
	// when missing; an existing initialised cluster in it is reused.
	Dir string
	// Port names the socket (.s.PGSQL.<port>); 0 picks a free TCP port
	// number so the name cannot clash with a server on the default port.
	Port int
	// User is the database superuser created by initdb (default "sluice").
	User string
	// Durable keeps fsync on. Tests leave it off: a throwaway cluster does
	// not need to survive a power cut and fsync makes every test slower.
	Durable bool
	// Log receives the server's output (default: discarded).
	Log *os.File
}

// Cluster is a running server. Stop it with Stop.
type Cluster struct {
	opts    Options
	dataDir string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// ErrNotInstalled is returned when initdb or postgres cannot be found.
var ErrNotInstalled = errors.New("pgcluster: PostgreSQL server binaries (initdb, postgres) not found; install Debian's postgresql package (make setup)")

// Start initialises the cluster when needed, starts the server and waits
// until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgcluster: Options.Dir is required")
	}
	if opts.User == "" {
		opts.User = "sluice"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	if opts.Port == 0 {
		if opts.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if cred != nil {
		if err := chownTree(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	c := &Cluster{opts: opts, dataDir: filepath.Join(dir, "data"), done: make(chan struct{})}

	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", c.dataDir, "-U", opts.User, "-A", "trust", "-E", "UTF8",
			"--locale=C", "--no-sync", "--no-instructions")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
		}
	}

	if pid := runningPostmaster(c.dataDir); pid > 0 {
		return nil, fmt.Errorf("pgcluster: a PostgreSQL server (pid %d) is already running in %s; is another controlplane dev running?", pid, c.dataDir)
	}
	args := []string{"-D", c.dataDir, "-k", dir, "-p", strconv.Itoa(opts.Port),
		"-c", "listen_addresses=", "-c", "max_connections=200"}
	if !opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	// Fast shutdown if we die without calling Stop, so no server outlives
	// the test binary or `controlplane dev`.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if opts.Log != nil {
		cmd.Stdout, cmd.Stderr = opts.Log, opts.Log
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.cmd = cmd
	go func() { c.waitErr = cmd.Wait(); close(c.done) }()

	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	return c, nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.done:
			return fmt.Errorf("pgcluster: postgres exited before accepting connections: %v (see its log)", c.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcluster: postgres not ready after 60s: %w", err)
		}
	}
}

// URL is a connection URL for database db on this cluster.
func (c *Cluster) URL(db string) string {
	q := url.Values{"host": {c.opts.Dir}, "port": {strconv.Itoa(c.opts.Port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(c.opts.User), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// SocketDir is the directory holding the server's socket (psql -h).
func (c *Cluster) SocketDir() string { return c.opts.Dir }

// Port is the port number in the socket's name (psql -p).
func (c *Cluster) Port() int { return c.opts.Port }

// Stop shuts the server down (fast shutdown: open sessions are
// disconnected) and waits for it, killing it if ctx ends first.
func (c *Cluster) Stop(ctx context.Context) error {
	var err error
	c.stop.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-ctx.Done():
			_ = c.cmd.Process.Kill()
			<-c.done
			err = ctx.Err()
		}
	})
	return err
}

// binDir finds the directory of initdb and postgres: PATH first, then
// Debian's versioned /usr/lib/postgresql/<major>/bin (newest first), where
// the server binaries live without being on PATH.
func binDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runAs returns the credential to run the server with: nil when we are not
// root, the `postgres` user when we are.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: PostgreSQL refuses to run as root and there is no `postgres` user to run it as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownTree(dir string, uid, gid int) error {
	// The postgres user must be able to reach the directory: check the
	// parents now rather than let initdb fail with a bare "permission denied".
	for p := filepath.Dir(dir); p != "/"; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("pgcluster: the postgres user cannot reach %s: %s is not searchable by others (chmod o+x %s, or set DATABASE_URL)", dir, p, p)
		}
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runningPostmaster returns the pid of a live server recorded in
// dataDir's postmaster.pid, or 0. A stale file (after a crash) is left for
// postgres, which replaces it.
func runningPostmaster(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// quoteIdent quotes a SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// CreateDatabase creates database name, copied from template when it is
// not empty (a migrated template makes a fresh test database cheap).
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	sql := "CREATE DATABASE " + quoteIdent(name)
	if template != "" {
		sql += " TEMPLATE " + quoteIdent(template)
	}
	_, err = conn.Exec(ctx, sql)
	return err
}

// IsDuplicateDatabase reports whether err says the database exists.
func IsDuplicateDatabase(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P04"
}
