package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/cmd/controlplane/playground"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/gitserver"
	"github.com/sluicehq/sluice/gitops/gitstore"
)

// devFleet is the fleet `controlplane dev` runs its runner in.
const devFleet = "dev"

// devPlatform is what `controlplane dev` adds to the control plane: a
// fleet with one `runner agent` on the embedded Kafka, and a playground
// repository with an example pipeline.
type devPlatform struct {
	projectID uuid.UUID
	fleetID   uuid.UUID
	seeded    string // the first commit, when this run made it
}

// setUpDev makes sure the playground project has its fleet and its first
// commit. The fleet is created before the commit, so the commit's rollout
// targets it.
func setUpDev(ctx context.Context, cp *controlPlane, org, project string) (*devPlatform, error) {
	d := &devPlatform{}
	var admin *uuid.UUID
	err := cp.pool.QueryRow(ctx, `SELECT p.id, (SELECT user_id FROM project_members WHERE project_id = p.id AND role = 'owner' ORDER BY created_at LIMIT 1)
		FROM projects p JOIN organizations o ON o.id = p.org_id WHERE o.name = $1 AND p.name = $2`, org, project).Scan(&d.projectID, &admin)
	if err != nil {
		return nil, fmt.Errorf("the %s/%s project: %w", org, project, err)
	}
	err = pgx.BeginFunc(ctx, cp.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT id FROM fleets WHERE project_id = $1 AND name = $2", d.projectID, devFleet).Scan(&d.fleetID)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		d.fleetID, err = uuid.NewV7()
		if err != nil {
			return err
		}
		// A short bake keeps the edit-push-see loop quick on a laptop.
		_, err = tx.Exec(ctx, `INSERT INTO fleets (id, project_id, name, module, runners, strategy, bake_seconds, status)
			VALUES ($1, $2, $3, 'local', 1, 'all-at-once', 2, 'ready')`, d.fleetID, d.projectID, devFleet)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("the dev fleet: %w", err)
	}
	_, err = cp.gitops.repos.Head(ctx, d.projectID, "main")
	if err == nil {
		return d, nil // seeded on an earlier run
	}
	if !errors.Is(err, gitstore.ErrRefNotFound) {
		return nil, err
	}
	files := map[string][]byte{}
	err = fs.WalkDir(playground.Files, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files[p], err = fs.ReadFile(playground.Files, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	a := gitserver.Access{ProjectID: d.projectID, Org: org, Project: project, DeployBranch: "main", CanWrite: true}
	if admin != nil {
		a.Principal = *admin
	}
	sha, rej, err := cp.gitops.git.Commit(ctx, a, gitserver.CommitRequest{
		Branch: "main", Parent: plumbing.ZeroHash, Files: files, Message: "Add an example pipeline and its test",
		Author: object.Signature{Name: "Sluice", Email: "dev@sluice.invalid"},
	})
	if err != nil {
		return nil, fmt.Errorf("seed the playground repository: %w", err)
	}
	if rej != nil {
		return nil, fmt.Errorf("seed the playground repository: %s: %s", rej.Reason, strings.Join(rej.Lines, "\n"))
	}
	d.seeded = sha.String()
	return d, nil
}

// startRunner starts `runner agent` for the dev fleet and stops it (with
// SIGTERM, then SIGKILL after 30 s) when ctx ends; the returned channel is
// closed when it has exited. Its log goes to a file.
func (d *devPlatform) startRunner(ctx context.Context, cp *controlPlane, cfg config, base string) (<-chan struct{}, string, error) {
	bin, err := findRunner(cfg.runnerPath)
	if err != nil {
		return nil, "", err
	}
	dataDir := filepath.Join(cfg.dataDir, "runner")
	logPath := filepath.Join(cfg.dataDir, "runner.log")
	logFile, err := openLog(logPath)
	if err != nil {
		return nil, "", err
	}
	// A bootstrap token on every start: the agent spends it only when its
	// data directory holds no credential yet; unused ones expire.
	var tok deploy.BootstrapToken
	err = pgx.BeginFunc(ctx, cp.pool, func(tx pgx.Tx) (err error) {
		tok, err = deploy.MintBootstrapToken(ctx, tx, d.fleetID, 1, 10*time.Minute, nil)
		return err
	})
	if err != nil {
		logFile.Close()
		return nil, "", err
	}
	args := []string{"agent", "--control-plane", base, "--data-dir", dataDir, "--name", "dev-runner-1",
		"--listen", cfg.runnerListen, "--state-dir", filepath.Join(cfg.dataDir, "state")}
	if cfg.kafkaBrokers != "" {
		args = append(args, "--brokers", cfg.kafkaBrokers)
	} else {
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
}
