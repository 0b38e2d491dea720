package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/internal/apiclient"
)

// session is a verified place to send requests: a client with a token and
// the project the commands work on.
type session struct {
	api     *apiclient.Client
	project string
}

// connect builds the session from the settings file and environment.
func connect(d deps) (*session, error) {
	path, err := configPath(d.getenv)
	if err != nil {
		return nil, err
	}
	s, err := readSettings(path)
	if err != nil {
		return nil, err
	}
	s = s.withEnv(d.getenv)
	if s.Token == "" {
		return nil, errors.New("not logged in: run `sluice login` (or set SLUICE_TOKEN)")
	}
	if s.ProjectID == "" {
		return nil, errors.New("no project: run `sluice login` again (or set SLUICE_PROJECT_ID)")
	}
	c, err := apiclient.New(s.URL, s.Token, d.http)
	if err != nil {
		return nil, err
	}
	return &session{api: c, project: s.ProjectID}, nil
}

// runLogin asks for the URL and token, verifies the token with GET /me,
// finds its project and saves the three.
func runLogin(ctx context.Context, cfg config, d deps) error {
	path, err := configPath(d.getenv)
	if err != nil {
		return err
	}
	saved, err := readSettings(path)
	if err != nil {
		saved = settings{} // a broken file is about to be replaced
	}
	in := bufio.NewReader(d.stdin)
	url := cfg.url
	if url == "" {
		url = saved.withEnv(d.getenv).URL
		if d.terminal && !cfg.tokenStdin {
			fmt.Fprintf(d.stderr, "Control plane URL [%s]: ", url)
			line, err := readLine(ctx, in)
			if err != nil {
				return fmt.Errorf("reading the URL: %w", err)
			}
			if line != "" {
				url = line
			}
		}
	}
	token, err := readToken(ctx, in, cfg, d)
	if err != nil {
		return err
	}
	if token == "" {
		return errors.New("no API token given (create one in the project's settings, or use SLUICE_TOKEN from `make dev`'s .sluice/credentials)")
	}
	c, err := apiclient.New(url, token, d.http)
	if err != nil {
		return err
	}
	me, err := c.Me(ctx)
	if apiclient.IsStatus(err, http.StatusUnauthorized) {
		var ae *apiclient.Error
		errors.As(err, &ae)
		return fmt.Errorf("the control plane at %s refused the token: %s", c.URL(), ae.Detail)
	}
	if err != nil {
		return err
	}
	if me.Kind != "token" || me.Token == nil {
		return fmt.Errorf("the control plane says this is a %q, not an API token", me.Kind)
	}
	p, err := c.Project(ctx, me.Token.ProjectID)
	if err != nil {
		return fmt.Errorf("the token is valid, but its project: %w", err)
	}
	if err := writeSettings(path, settings{URL: c.URL(), Token: token, ProjectID: p.ID}); err != nil {
		return fmt.Errorf("saving the settings: %w", err)
	}
	role := me.Token.Role
	if role == "" {
		role = p.Role
	}
	fmt.Fprintf(d.stdout, "Logged in to %s with token %q (%s of project %q).\nSaved to %s.\n", c.URL(), me.Token.Name, role, p.Name, path)
	if me.Token.ExpiresAt != nil {
		fmt.Fprintf(d.stdout, "The token expires at %s.\n", me.Token.ExpiresAt.Local().Format("2006-01-02 15:04 MST"))
	}
	for _, env := range []string{"SLUICE_URL", "SLUICE_TOKEN", "SLUICE_PROJECT_ID"} {
		if d.getenv(env) != "" {
			fmt.Fprintf(d.stderr, "Note: %s is set and overrides the saved setting.\n", env)
		}
	}
	return nil
}

// readToken reads the token: all of stdin with --token-stdin, else a line,
// with a prompt and without echo on a terminal.
func readToken(ctx context.Context, in *bufio.Reader, cfg config, d deps) (string, error) {
	if cfg.tokenStdin {
		b, err := io.ReadAll(io.LimitReader(in, 4096))
		if err != nil {
			return "", fmt.Errorf("reading the token from stdin: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if !d.terminal {
		return readLine(ctx, in)
	}
	hidden := d.setEcho != nil && d.setEcho(false) == nil
	if hidden {
		defer func() {
			_ = d.setEcho(true)
			fmt.Fprintln(d.stderr) // the Enter that was not echoed
		}()
		fmt.Fprint(d.stderr, "API token: ")
	} else {
		fmt.Fprint(d.stderr, "API token (it will be visible as you type; --token-stdin avoids that): ")
	}
	line, err := readLine(ctx, in)
	if err != nil {
		return "", fmt.Errorf("reading the token: %w", err)
	}
	return line, nil
}

// readLine reads one line, trimmed (EOF ends a line), or gives up when ctx
// ends, so Ctrl-C at a prompt restores the terminal's echo and exits.
func readLine(ctx context.Context, in *bufio.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := in.ReadString('\n')
		if errors.Is(err, io.EOF) {
			err = nil
		}
		done <- result{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
