package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/cmd/controlplane/demo"
	"github.com/sluicehq/sluice/cmd/controlplane/playground"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/gitserver"
	"github.com/sluicehq/sluice/gitops/gitstore"
)

// devFleet is the fleet `controlplane dev` runs its runner in.
const devFleet = "dev"

// demoProject is the project `controlplane dev` seeds with the domain
// operators' pipelines (cmd/controlplane/demo) and feeds with generated
// traffic (demotraffic.go).
const demoProject = "demo"

// devPlatform is what `controlplane dev` adds to the control plane: a
// fleet with one `runner agent` on the embedded Kafka, and a playground
// repository with an example pipeline; and a demo project with its own
// fleet and runner, whose pipelines run on generated traffic.
type devPlatform struct {
	projectID uuid.UUID
	fleetID   uuid.UUID
	seeded    string // the first commit, when this run made it
	demo      struct {
		projectID, fleetID uuid.UUID
		seeded             string
	}
}

// setUpDev makes sure the playground and demo projects have their fleets
// and first commits. A fleet is created before its project's commit, so the
// commit's rollout targets it.
func setUpDev(ctx context.Context, cp *controlPlane, org, project string) (*devPlatform, error) {
	d := &devPlatform{}
	var admin *uuid.UUID
	err := cp.pool.QueryRow(ctx, `SELECT p.id, (SELECT user_id FROM project_members WHERE project_id = p.id AND role = 'owner' ORDER BY created_at LIMIT 1)
		FROM projects p JOIN organizations o ON o.id = p.org_id WHERE o.name = $1 AND p.name = $2`, org, project).Scan(&d.projectID, &admin)
	if err != nil {
		return nil, fmt.Errorf("the %s/%s project: %w", org, project, err)
	}
	if d.fleetID, d.seeded, err = seedDevProject(ctx, cp, org, project, d.projectID, admin, playground.Files, "Add an example pipeline and its test"); err != nil {
		return nil, err
	}
	if d.demo.projectID, err = ensureDemoProject(ctx, cp, org, admin); err != nil {
		return nil, err
	}
	d.demo.fleetID, d.demo.seeded, err = seedDevProject(ctx, cp, org, demoProject, d.demo.projectID, admin, demo.Files,
		"Add the demo pipelines: fleet zones, trips, driving events and idling; cold-chain alerts and anomalies; card velocity")
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ensureDemoProject returns the demo project's id, creating it (owned by
// admin, as the playground is) on the first run.
func ensureDemoProject(ctx context.Context, cp *controlPlane, org string, admin *uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := pgx.BeginFunc(ctx, cp.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT p.id FROM projects p JOIN organizations o ON o.id = p.org_id WHERE o.name = $1 AND p.name = $2`,
			org, demoProject).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if id, err = uuid.NewV7(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO projects (id, org_id, name, description)
			SELECT $1, o.id, $2, 'Domain operators on generated traffic (controlplane dev)' FROM organizations o WHERE o.name = $3`, id, demoProject, org)
		if err != nil {
			return err
		}
		if admin != nil {
			if _, err := tx.Exec(ctx, "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')", id, *admin); err != nil {
				return err
			}
		}
		aid, err := uuid.NewV7()
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (id, actor_type, actor_name, action, resource_type, resource_id, project_id, details)
			VALUES ($1, 'system', 'controlplane', 'project.create', 'project', $2, $3, $4)`, aid, id.String(), id, map[string]any{"name": demoProject, "reason": "controlplane dev"})
		return err
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("the %s/%s project: %w", org, demoProject, err)
	}
	return id, nil
}

// seedDevProject makes sure a project has the dev fleet and, when its
// repository is empty, commits files as its first revision. It returns the
// fleet and the commit it made ("" when the repository had one).
func seedDevProject(ctx context.Context, cp *controlPlane, org, project string, projectID uuid.UUID, admin *uuid.UUID, content fs.FS, message string) (fleetID uuid.UUID, seeded string, err error) {
	err = pgx.BeginFunc(ctx, cp.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT id FROM fleets WHERE project_id = $1 AND name = $2", projectID, devFleet).Scan(&fleetID)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		fleetID, err = uuid.NewV7()
		if err != nil {
			return err
		}
		// A short bake keeps the edit-push-see loop quick on a laptop.
		_, err = tx.Exec(ctx, `INSERT INTO fleets (id, project_id, name, module, runners, strategy, bake_seconds, status)
			VALUES ($1, $2, $3, 'local', 1, 'all-at-once', 2, 'ready')`, fleetID, projectID, devFleet)
		return err
	})
	if err != nil {
		return fleetID, "", fmt.Errorf("the %s dev fleet: %w", project, err)
	}
	_, err = cp.gitops.repos.Head(ctx, projectID, "main")
	if err == nil {
		return fleetID, "", nil // seeded on an earlier run
	}
	if !errors.Is(err, gitstore.ErrRefNotFound) {
		return fleetID, "", err
	}
	files := map[string][]byte{}
	err = fs.WalkDir(content, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files[p], err = fs.ReadFile(content, p)
		return err
	})
	if err != nil {
		return fleetID, "", err
	}
	a := gitserver.Access{ProjectID: projectID, Org: org, Project: project, DeployBranch: "main", CanWrite: true}
	if admin != nil {
		a.Principal = *admin
	}
	sha, rej, err := cp.gitops.git.Commit(ctx, a, gitserver.CommitRequest{
		Branch: "main", Parent: plumbing.ZeroHash, Files: files, Message: message,
		Author: object.Signature{Name: "Sluice", Email: "dev@sluice.invalid"},
	})
	if err != nil {
		return fleetID, "", fmt.Errorf("seed the %s repository: %w", project, err)
	}
	if rej != nil {
		return fleetID, "", fmt.Errorf("seed the %s repository: %s: %s", project, rej.Reason, strings.Join(rej.Lines, "\n"))
	}
	return fleetID, sha.String(), nil
}

// startRunner starts the dev fleets' runner agents and the demo traffic,
// and stops them when ctx ends; the returned channel is closed when all
// have exited. The playground's runner runs the embedded Kafka (without
// --kafka-brokers); the demo project's runner, started once that Kafka
// answers, joins it, and so does the traffic generator unless
// --no-demo-traffic. It returns the playground runner's log.
func (d *devPlatform) startRunner(ctx context.Context, cp *controlPlane, cfg config, base string) (<-chan struct{}, string, error) {
	playgroundDone, logPath, err := d.startAgent(ctx, cp, cfg, base, d.fleetID, "dev-runner-1", "runner", cfg.runnerListen, "")
	if err != nil {
		return nil, "", err
	}
	brokers := cfg.kafkaBrokers
	if brokers == "" {
		brokers = cfg.embeddedAddr
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { <-playgroundDone })
	wg.Go(func() {
		if !waitForKafka(ctx, brokers) {
			return
		}
		// The input topics first, so that the demo runner finds them.
		if !cfg.noDemoTraffic {
			if err := demoTraffic(ctx, cfg, brokers, true); err != nil {
				cp.log.Warn("demo project: create its input topics", "err", err)
			}
		}
		// The demo runner's ops server takes any free port: the fixed one
		// is the playground runner's.
		host, _, _ := net.SplitHostPort(cfg.runnerListen)
		demoDone, demoLog, err := d.startAgent(ctx, cp, cfg, base, d.demo.fleetID, "demo-runner-1", "demo-runner", net.JoinHostPort(host, "0"), brokers)
		if err != nil {
			cp.log.Error("start the demo project's runner", "err", err)
			return
		}
		cp.log.Info("demo project: runner started", "log", demoLog)
		if !cfg.noDemoTraffic {
			cp.log.Info("demo project: producing its traffic", "log", filepath.Join(cfg.dataDir, "demo-traffic.log"), "seed", cfg.demoSeed)
			if err := demoTraffic(ctx, cfg, brokers, false); err != nil {
				cp.log.Error("demo traffic stopped", "err", err)
			}
		}
		<-demoDone
	})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done, logPath, nil
}

// waitForKafka waits until the first of brokers accepts a connection (the
// embedded one starts with the playground runner), for up to two minutes.
func waitForKafka(ctx context.Context, brokers string) bool {
	addr := strings.Split(brokers, ",")[0]
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var dialer net.Dialer
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := dialer.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
	return false
}

// startAgent starts `runner agent` for a fleet and stops it (with SIGTERM,
// then SIGKILL after 30 s) when ctx ends; the returned channel is closed
// when it has exited. Its data lives in DATA-DIR/dir and its log in
// DATA-DIR/dir.log. Without brokers it runs the embedded Kafka.
func (d *devPlatform) startAgent(ctx context.Context, cp *controlPlane, cfg config, base string, fleetID uuid.UUID, name, dir, listen, brokers string) (<-chan struct{}, string, error) {
	bin, err := findRunner(cfg.runnerPath)
	if err != nil {
		return nil, "", err
	}
	dataDir := filepath.Join(cfg.dataDir, dir)
	logPath := filepath.Join(cfg.dataDir, dir+".log")
	stateDir := filepath.Join(cfg.dataDir, "state")
	if dir != "runner" {
		stateDir = filepath.Join(cfg.dataDir, dir+"-state")
	}
	logFile, err := openLog(logPath)
	if err != nil {
		return nil, "", err
	}
	// A bootstrap token on every start: the agent spends it only when its
	// data directory holds no credential yet; unused ones expire.
	var tok deploy.BootstrapToken
	err = pgx.BeginFunc(ctx, cp.pool, func(tx pgx.Tx) (err error) {
		tok, err = deploy.MintBootstrapToken(ctx, tx, fleetID, 1, 10*time.Minute, nil)
		return err
	})
	if err != nil {
		logFile.Close()
		return nil, "", err
	}
	args := []string{"agent", "--control-plane", base, "--data-dir", dataDir, "--name", name,
		"--listen", listen, "--state-dir", stateDir}
	switch {
	case brokers != "":
		args = append(args, "--brokers", brokers)
	case cfg.kafkaBrokers != "":
		args = append(args, "--brokers", cfg.kafkaBrokers)
	default:
		args = append(args, "--embedded-addr", cfg.embeddedAddr)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SLUICE_BOOTSTRAP_TOKEN="+tok.Secret)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cmd.Wait()
		logFile.Close()
	}()
	return done, logPath, nil
}

// demoTraffic runs `runner demo-traffic` (internal/demotraffic) until it
// exits or ctx ends: with topicsOnly it creates the demo's input topics,
// otherwise it produces the demo's records. A child process, so that the
// control plane links no Kafka client of its own (it is most of a
// long-lived process's resident memory). Its output goes to
// DATA-DIR/demo-traffic.log.
func demoTraffic(ctx context.Context, cfg config, brokers string, topicsOnly bool) error {
	bin, err := findRunner(cfg.runnerPath)
	if err != nil {
		return err
	}
	logFile, err := openLog(filepath.Join(cfg.dataDir, "demo-traffic.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := []string{"demo-traffic", "--brokers", brokers, "--seed", strconv.FormatUint(cfg.demoSeed, 10)}
	if topicsOnly {
		args = append(args, "--topics-only")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return nil
}

// findRunner finds the runner binary: the flag, then bin/runner next to
// this binary (what `make dev` builds), then $PATH.
func findRunner(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "runner")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("runner"); err == nil {
		return p, nil
	}
	return "", errors.New("no runner binary: build it with `make build` (bin/runner) or pass --runner PATH")
}

// printQuickStart prints what a new user pastes next.
func printQuickStart(w io.Writer, base, token, credPath, kafka, logPath string) {
	repo := base + "/git/default/playground.git"
	fmt.Fprintf(w, "  Runner:     one `runner agent` in fleet %q on Kafka at %s (log: %s)\n\n", devFleet, kafka, logPath)
	fmt.Fprintf(w, "Quick start (in another terminal):\n\n")
	fmt.Fprintf(w, "  set -a; . %s; set +a\n", credPath)
	fmt.Fprintf(w, "  git clone -c credential.helper='!f() { echo username=git; echo password=$SLUICE_TOKEN; }; f' %s\n", repo)
	fmt.Fprintf(w, "      (or put the token in the URL: git clone http://git:$SLUICE_TOKEN@%s/git/default/playground.git)\n", strings.TrimPrefix(base, "http://"))
	fmt.Fprintf(w, "  echo '{\"user\":\"ada\",\"page\":\"/Pricing\",\"ms\":1200,\"agent\":\"firefox\"}' | kcat -P -b %s -t clicks\n", kafka)
	fmt.Fprintf(w, "  kcat -C -b %s -t clicks.clean -o beginning -e\n", kafka)
	fmt.Fprintf(w, "\n  Then edit playground/pipelines/clicks.yaml, commit and `git push`: the push runs its tests,\n")
	fmt.Fprintf(w, "  and the runner runs the new revision within seconds.\n")
	if token != "" {
		fmt.Fprintf(w, "  Watch rollouts: curl -H \"Authorization: Bearer $SLUICE_TOKEN\" %s/api/v1/projects/$SLUICE_PROJECT_ID/rollouts\n", base)
	}
	fmt.Fprintf(w, "\nDemo project %q (%s/git/default/%s.git): seven pipelines on the domain operators (geofence, trip,\n", demoProject, base, demoProject)
	fmt.Fprintf(w, "  driving_events, idle, threshold, anomaly, velocity), fed about 20 records/s of vans, sensors and card\n")
	if !strings.HasSuffix(logPath, ".log") {
		fmt.Fprintf(w, "  payments by `controlplane dev` unless --no-demo-traffic; with --no-runner, neither its runner nor the traffic starts.\n")
		return
	}
	fmt.Fprintf(w, "  payments unless --no-demo-traffic; its own runner logs to %s. Read the driving events:\n", filepath.Join(filepath.Dir(logPath), "demo-runner.log"))
	fmt.Fprintf(w, "  kcat -C -b %s -t fleet.driving-events -o beginning\n", kafka)
	fmt.Fprintf(w, "  (also fleet.zone-events, fleet.trips, fleet.idle, sensors.alerts, sensors.anomalies, payments.velocity-cases)\n")
}
