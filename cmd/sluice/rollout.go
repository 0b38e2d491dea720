package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/apiclient"
)

// newestFirst lists the project's rollouts, newest first (the API lists
// them oldest first).
func newestFirst(ctx context.Context, s *session) ([]apiclient.Rollout, error) {
	rs, err := s.api.Rollouts(ctx, s.project)
	if err != nil {
		return nil, err
	}
	slices.Reverse(rs)
	return rs, nil
}

// resolveRollout turns what the user typed into a rollout ID: empty is the
// newest rollout, a full ID is itself (the API says if it does not
// exist), anything shorter is a unique prefix.
func resolveRollout(ctx context.Context, s *session, arg string) (string, error) {
	arg = strings.ToLower(strings.TrimSpace(arg))
	if len(arg) == 36 {
		return arg, nil
	}
	rs, err := newestFirst(ctx, s)
	if err != nil {
		return "", err
	}
	if arg == "" {
		if len(rs) == 0 {
			return "", errors.New("the project has no rollouts yet: a push or a deployment starts one")
		}
		return rs[0].ID, nil
	}
	var match []string
	for _, r := range rs {
		if strings.HasPrefix(r.ID, arg) {
			match = append(match, r.ID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no rollout of the project has an ID starting with %q (see sluice rollout list)", arg)
	case 1:
		return match[0], nil
	default:
		return "", fmt.Errorf("%q starts %d rollout IDs; give more of the ID (see sluice rollout list)", arg, len(match))
	}
}

func runRolloutList(ctx context.Context, cfg config, d deps, s *session) error {
	rs, err := newestFirst(ctx, s)
	if err != nil {
		return err
	}
	if cfg.output == "json" {
		return writeJSON(d.stdout, nonNil(rs))
	}
	if len(rs) == 0 {
		fmt.Fprintln(d.stdout, "No rollouts yet: a push or a deployment starts one.")
		return nil
	}
	shown := rs
	if cfg.limit > 0 && len(shown) > cfg.limit {
		shown = shown[:cfg.limit]
	}
	t := newTable(d.stdout, "ID", "FLEET", "COMMIT", "STRATEGY", "PHASE", "STATUS", "STARTED", "REASON")
	now := d.now()
	for _, r := range shown {
		rolloutRow(t, r, now)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if n := len(rs) - len(shown); n > 0 {
		fmt.Fprintf(d.stdout, "(%d older; --limit 0 shows all)\n", n)
	}
	return nil
}

func runRolloutAction(ctx context.Context, cfg config, d deps, s *session) error {
	id, err := resolveRollout(ctx, s, cfg.rolloutID)
	if err != nil {
		return err
	}
	var r apiclient.Rollout
	switch cfg.command {
	case "rollout rollback":
		r, err = s.api.Rollback(ctx, s.project, id, cfg.reason)
	case "rollout pause":
		r, err = s.api.Pause(ctx, s.project, id)
	case "rollout resume":
		r, err = s.api.Resume(ctx, s.project, id)
	}
	if err != nil {
		return err
	}
	if cfg.output == "json" {
		return writeJSON(d.stdout, r)
	}
	w := d.stdout
	switch cfg.command {
	case "rollout rollback":
		fmt.Fprintf(w, "Rolled back rollout %s on fleet %s: %s (%s)\n", r.ID, clean(r.Fleet), r.Phase, r.Status)
		if r.Reason != "" {
			fmt.Fprintf(w, "Reason: %s\n", clean(r.Reason))
		}
		if r.Revert != "" {
			fmt.Fprintf(w, "Revert commit %s deploys as a new rollout: sluice rollout watch\n", shortSHA(r.Revert))
		}
	case "rollout pause":
		fmt.Fprintf(w, "Paused rollout %s on fleet %s (%s): promoted runners keep the new revision, the others the old.\n",
			r.ID, clean(r.Fleet), r.Phase)
		fmt.Fprintf(w, "Resume it with: sluice rollout resume %s\n", r.ID)
	case "rollout resume":
		fmt.Fprintf(w, "Resumed rollout %s on fleet %s (%s).\n", r.ID, clean(r.Fleet), r.Phase)
	}
	return nil
}

// maxReconnects is how many times in a row watch reconnects an event
// stream that broke before the rollout ended (a control plane restart).
const maxReconnects = 10

// runRolloutWatch prints a rollout's events as they happen and ends with
// its outcome: exit 0 when it succeeded, 1 otherwise.
func runRolloutWatch(ctx context.Context, cfg config, d deps, s *session) error {
	id, err := resolveRollout(ctx, s, cfg.rolloutID)
	if err != nil {
		return err
	}
	ro, err := s.api.Rollout(ctx, s.project, id)
	if err != nil {
		return err
	}
	commit := shortSHA(ro.Commit)
	if commit == "" {
		commit = "an API change"
	} else {
		commit = "commit " + commit
	}
	fmt.Fprintf(d.stdout, "Rollout %s: %s to fleet %s (%s), pipelines %s\n", ro.ID, commit, clean(ro.Fleet),
		orDash(ro.Strategy), orDash(clean(strings.Join(ro.Pipelines, ", "))))
	var last int64
	printEvent := func(e apiclient.Event) error {
		if e.ID <= last {
			return nil // replayed after a reconnect
		}
		last = e.ID
		_, err := fmt.Fprintf(d.stdout, "%s  %s\n", e.At.Local().Format("2006-01-02 15:04:05"), clean(e.Message))
		return err
	}
	var end apiclient.Rollout
	for failures := 0; ; {
		started := time.Now()
		end, err = s.api.StreamEvents(ctx, s.project, id, printEvent)
		if err == nil {
			break
		}
		if time.Since(started) > 10*time.Second {
			failures = 0 // it streamed for a while: a server's write timeout, not an outage
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var unreachable *apiclient.UnreachableError
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &unreachable) {
			return err
		}
		if failures++; failures > maxReconnects {
			return err
		}
		fmt.Fprintf(d.stderr, "sluice: the event stream broke (%v); reconnecting\n", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(min(failures, 5)) * time.Second):
		}
	}
	return outcome(d.stdout, end)
}

// outcome says how a finished rollout ended and turns it into the exit
// status: 0 for Succeeded, 1 for anything else.
func outcome(w io.Writer, r apiclient.Rollout) error {
	line := fmt.Sprintf("Rollout %s: %s (%s)", r.ID, r.Phase, r.Status)
	if r.Reason != "" {
		line += ": " + clean(r.Reason)
	}
	fmt.Fprintln(w, line)
	switch {
	case r.Phase == "Succeeded" && r.Status != "Degraded":
		return nil
	case r.Phase == "Superseded":
		fmt.Fprintf(w, "A newer rollout replaced it on fleet %s before it finished: sluice rollout watch follows the newest.\n", clean(r.Fleet))
	case r.Revert != "":
		fmt.Fprintf(w, "Revert commit: %s\n", shortSHA(r.Revert))
	}
	return &exitStatus{code: 1}
}
