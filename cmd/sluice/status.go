package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/internal/apiclient"
)

// recentRollouts is how many finished rollouts `sluice status` shows.
const recentRollouts = 5

// statusReport is `sluice status`, and its -o json form.
type statusReport struct {
	URL       string              `json:"url"`
	Project   apiclient.Project   `json:"project"`
	Pipelines []pipelineStatus    `json:"pipelines"`
	Active    []apiclient.Rollout `json:"active_rollouts"`
	// Recent are the latest finished rollouts, newest first.
	Recent  []apiclient.Rollout `json:"recent_rollouts"`
	Runners []runnerStatus      `json:"runners"`
}

type pipelineStatus struct {
	ID             string             `json:"id"`
	Name           string             `json:"name"`
	LatestRevision int                `json:"latest_revision"`
	Deployments    []deploymentStatus `json:"deployments"`
}

// deploymentStatus is a pipeline on one fleet.
type deploymentStatus struct {
	Fleet    string `json:"fleet"`
	FleetID  string `json:"fleet_id"`
	Revision int    `json:"revision"`
	// Status is Synced, OutOfSync, Progressing or Degraded.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type runnerStatus struct {
	Fleet string `json:"fleet"`
	apiclient.Runner
}

func gatherStatus(ctx context.Context, s *session) (statusReport, error) {
	r := statusReport{URL: s.api.URL()}
	var err error
	if r.Project, err = s.api.Project(ctx, s.project); err != nil {
		return r, err
	}
	pipelines, err := s.api.Pipelines(ctx, s.project)
	if err != nil {
		return r, err
	}
	fleets, err := s.api.Fleets(ctx, s.project)
	if err != nil {
		return r, err
	}
	deployments, err := s.api.Deployments(ctx, s.project)
	if err != nil {
		return r, err
	}
	rollouts, err := s.api.Rollouts(ctx, s.project)
	if err != nil {
		return r, err
	}
	fleetName := map[string]string{}
	for _, f := range fleets {
		fleetName[f.ID] = f.Name
	}
	for _, p := range pipelines {
		ps := pipelineStatus{ID: p.ID, Name: p.Name, LatestRevision: p.LatestRevision, Deployments: []deploymentStatus{}}
		for _, d := range deployments {
			if d.PipelineID == p.ID {
				ps.Deployments = append(ps.Deployments, deploymentStatus{Fleet: fleetName[d.FleetID], FleetID: d.FleetID,
					Revision: d.RevisionNumber, Status: d.Status, Message: d.Message})
			}
		}
		slices.SortFunc(ps.Deployments, func(a, b deploymentStatus) int { return cmp.Compare(a.Fleet, b.Fleet) })
		r.Pipelines = append(r.Pipelines, ps)
	}
	slices.SortFunc(r.Pipelines, func(a, b pipelineStatus) int { return cmp.Compare(a.Name, b.Name) })
	// The API lists rollouts oldest first.
	for i := len(rollouts) - 1; i >= 0; i-- {
		ro := rollouts[i]
		switch {
		case ro.FinishedAt == nil:
			r.Active = append(r.Active, ro)
		case len(r.Recent) < recentRollouts:
			r.Recent = append(r.Recent, ro)
		}
	}
	slices.SortFunc(fleets, func(a, b apiclient.Fleet) int { return cmp.Compare(a.Name, b.Name) })
	for _, f := range fleets {
		runners, err := s.api.Runners(ctx, s.project, f.ID)
		if err != nil {
			return r, err
		}
		slices.SortFunc(runners, func(a, b apiclient.Runner) int { return cmp.Compare(a.Name, b.Name) })
		for _, u := range runners {
			r.Runners = append(r.Runners, runnerStatus{Fleet: f.Name, Runner: u})
		}
	}
	// Scripts get [] rather than null for an empty list.
	r.Pipelines = nonNil(r.Pipelines)
	r.Active, r.Recent = nonNil(r.Active), nonNil(r.Recent)
	r.Runners = nonNil(r.Runners)
	return r, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func runStatus(ctx context.Context, cfg config, d deps, s *session) error {
	r, err := gatherStatus(ctx, s)
	if err != nil {
		return err
	}
	if cfg.output == "json" {
		return writeJSON(d.stdout, r)
	}
	return printStatus(d, r)
}

func printStatus(d deps, r statusReport) error {
	w := d.stdout
	now := d.now()
	role := ""
	if r.Project.Role != "" {
		role = " (" + r.Project.Role + ")"
	}
	fmt.Fprintf(w, "Project %s%s at %s\n\n", clean(r.Project.Name), role, r.URL)

	fmt.Fprintln(w, "PIPELINES")
	if len(r.Pipelines) == 0 {
		fmt.Fprintln(w, "  none yet: push a pipeline to the project's Git repository, or POST one to the API")
	} else {
		// MESSAGE only when there is one to show: the API may not return
		// deployment messages.
		hasMessage := false
		for _, p := range r.Pipelines {
			for _, dep := range p.Deployments {
				hasMessage = hasMessage || dep.Message != ""
			}
		}
		header := []string{"NAME", "LATEST", "FLEET", "DEPLOYED", "STATUS"}
		if hasMessage {
			header = append(header, "MESSAGE")
		}
		t := newTable(w, header...)
		row := func(cells ...string) { t.row(cells[:len(header)]...) }
		for _, p := range r.Pipelines {
			latest := revision(p.LatestRevision)
			if len(p.Deployments) == 0 {
				row(p.Name, orDash(latest), "-", "-", "not deployed", "")
			}
			for i, dep := range p.Deployments {
				name := p.Name
				if i > 0 {
					name, latest = "", "" // one pipeline's fleets under its name
				}
				if i == 0 {
					latest = orDash(latest)
				}
				row(name, latest, dep.Fleet, revision(dep.Revision), dep.Status, dep.Message)
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nROLLOUTS")
	if len(r.Active) == 0 && len(r.Recent) == 0 {
		fmt.Fprintln(w, "  none yet")
	} else {
		t := newTable(w, "ID", "FLEET", "COMMIT", "STRATEGY", "PHASE", "STATUS", "STARTED", "REASON")
		for _, ro := range r.Active {
			rolloutRow(t, ro, now)
		}
		for _, ro := range r.Recent {
			rolloutRow(t, ro, now)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nRUNNERS")
	if len(r.Runners) == 0 {
		fmt.Fprintln(w, "  none registered: a runner joins a fleet with a bootstrap token (POST .../fleets/{fleetID}/bootstrap-tokens)")
		return nil
	}
	t := newTable(w, "FLEET", "RUNNER", "LIVE", "VERSION", "GEN", "SEEN", "PIPELINE", "STATE", "PROCESSED", "DLQ")
	for _, u := range r.Runners {
		live := yesNo(u.Live)
		if u.Revoked {
			live = "revoked"
		}
		head := []string{u.Fleet, u.Name, live, orDash(u.Version), strconv.FormatInt(u.Generation, 10), ago(now, u.LastSeenAt)}
		if len(u.Report.Pipelines) == 0 {
			t.row(append(head, "-", "", "", "")...)
		}
		for i, p := range u.Report.Pipelines {
			if i > 0 {
				head = make([]string, len(head))
			}
			state := p.State
			if p.Error != "" {
				state += ": " + p.Error
			}
			t.row(append(head, p.Name, state, strconv.FormatUint(p.Processed, 10), strconv.FormatUint(p.DeadLetter, 10))...)
		}
		for _, e := range u.Report.Errors {
			t.row("", "", "", "", "", "", "", "error: "+e, "", "")
		}
	}
	return t.flush()
}

func revision(n int) string {
	if n <= 0 {
		return ""
	}
	return "r" + strconv.Itoa(n)
}

// rolloutRow is a rollout in a table with the columns ID, FLEET, COMMIT,
// STRATEGY, PHASE, STATUS, STARTED, REASON.
func rolloutRow(t *table, ro apiclient.Rollout, now time.Time) {
	phase := ro.Phase
	if ro.Paused && ro.FinishedAt == nil {
		phase += " (paused)"
	}
	commit := shortSHA(ro.Commit)
	if commit == "" {
		commit = "(api)"
	}
	t.row(ro.ID, ro.Fleet, commit, orDash(ro.Strategy), phase, ro.Status, ago(now, ro.CreatedAt), ro.Reason)
}
