// Command sluice is the command line for Sluice's control plane, for
// people and for scripts (in the spirit of `flux` and `argocd`): log in
// with an API token, see what runs where (`sluice status`), and follow,
// roll back, pause and resume rollouts.
//
// It speaks the REST API under /api/v1 through internal/apiclient. Where
// it connects and as whom comes from the file `sluice login` writes
// ($SLUICE_CONFIG, default ~/.config/sluice/config.json), overridden by
// SLUICE_URL, SLUICE_TOKEN and SLUICE_PROJECT_ID. Exit codes: 0 success,
// 1 failure (including a watched rollout that did not succeed), 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `sluice: the command line for Sluice's control plane.

Usage:
  sluice login [--url URL] [--token-stdin]   verify an API token and save it
  sluice status [-o json]                    pipelines, rollouts and runners of the project
  sluice rollout list [-o json] [--limit N]  the project's rollouts, newest first
  sluice rollout watch [ID]                  follow a rollout (default: the newest) until it ends;
                                             exit 0 when it succeeds, 1 when it does not
  sluice rollout rollback ID [--reason TEXT] restore the previous revisions now
  sluice rollout pause ID                    stop promoting more runners
  sluice rollout resume ID                   go on with a paused rollout
  sluice version                             print the version

A rollout ID may be shortened to any unique prefix.

Settings come from the file sluice login writes ($SLUICE_CONFIG, default
~/.config/sluice/config.json); SLUICE_URL, SLUICE_TOKEN and SLUICE_PROJECT_ID
override it. After make dev:  set -a; . .sluice/credentials; set +a
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills at once
	d := deps{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv:   os.Getenv,
		http:     &http.Client{},
		terminal: isTerminal(os.Stdin),
		setEcho:  sttyEcho,
		now:      time.Now,
	}
	code := execute(ctx, os.Args[1:], d)
	stop()
	os.Exit(code)
}

// deps are the command's surroundings, so tests run it in-process.
type deps struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// http makes the API calls; it has no overall timeout, because event
	// streams last as long as a rollout.
	http *http.Client
	// terminal is true when stdin is a terminal: login then prompts.
	terminal bool
	// setEcho turns the terminal's echo on or off, for the token prompt;
	// nil or an error means the token will be visible as it is typed.
	setEcho func(on bool) error
	now     func() time.Time
}

// config is the parsed command line.
type config struct {
	// command is "login", "status", "version", or "rollout list|watch|
	// rollback|pause|resume".
	command string
	// login
	url        string
	tokenStdin bool
	// status, rollout list
	output string // "table" or "json"
	limit  int
	// rollout watch, rollback, pause, resume
	rolloutID string
	reason    string
}

// usageError is a command line that does not parse: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitStatus ends the command with code after it has said why.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return "exit status " + strconv.Itoa(e.code) }

var errHelp = errors.New("help")

// execute parses args, runs the command and returns the exit code.
func execute(ctx context.Context, args []string, d deps) int {
	cfg, err := parseArgs(args, d.stderr)
	switch {
	case errors.Is(err, errHelp):
		fmt.Fprint(d.stdout, usage)
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil && len(args) == 0:
		fmt.Fprint(d.stderr, usage)
		return 2
	case err != nil:
		fmt.Fprintln(d.stderr, "sluice:", err)
		fmt.Fprintln(d.stderr, "Run `sluice help` for the commands.")
		return 2
	}
	err = run(ctx, cfg, d)
	var es *exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &es):
		return es.code
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(d.stderr, "sluice: interrupted")
		return 1
	default:
		fmt.Fprintln(d.stderr, "sluice:", explain(err))
		return 1
	}
}

// parseArgs reads the command and its flags. Flags may come before or
// after the positional arguments.
func parseArgs(args []string, stderr io.Writer) (config, error) {
	var cfg config
	if len(args) == 0 {
		return cfg, &usageError{"no command"}
	}
	cfg.command = args[0]
	args = args[1:]
	switch cfg.command {
	case "help", "-h", "--help":
		return cfg, errHelp
	case "version":
		return cfg, noArgs(cfg.command, args)
	case "rollout":
		if len(args) == 0 {
			return cfg, &usageError{"sluice rollout needs a subcommand: list, watch, rollback, pause or resume"}
		}
		cfg.command += " " + args[0]
		args = args[1:]
	}
	fs := flag.NewFlagSet("sluice "+cfg.command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := func() { fs.StringVar(&cfg.output, "o", "table", "output format: table or json") }
	var pos []string
	var err error
	switch cfg.command {
	case "login":
		fs.StringVar(&cfg.url, "url", "", "control plane URL (default: SLUICE_URL, the saved one, or "+defaultURL+")")
		fs.BoolVar(&cfg.tokenStdin, "token-stdin", false, "read the API token from stdin instead of prompting")
		pos, err = parseInterspersed(fs, args)
		if err == nil {
			err = noArgs(cfg.command, pos)
		}
	case "status":
		output()
		pos, err = parseInterspersed(fs, args)
		if err == nil {
			err = noArgs(cfg.command, pos)
		}
	case "rollout list":
		output()
		fs.IntVar(&cfg.limit, "limit", 20, "show at most this many rollouts in the table (0: all); -o json lists all")
		pos, err = parseInterspersed(fs, args)
		if err == nil {
			err = noArgs(cfg.command, pos)
		}
	case "rollout watch":
		pos, err = parseInterspersed(fs, args)
		if err == nil && len(pos) > 1 {
			err = &usageError{"sluice rollout watch takes at most one rollout ID"}
		}
		if err == nil && len(pos) == 1 {
			cfg.rolloutID = pos[0]
		}
	case "rollout rollback", "rollout pause", "rollout resume":
		if cfg.command == "rollout rollback" {
			fs.StringVar(&cfg.reason, "reason", "", "why, recorded in the rollout and the revert commit")
		}
		output()
		pos, err = parseInterspersed(fs, args)
		if err == nil && len(pos) != 1 {
			err = &usageError{"sluice " + cfg.command + " needs one rollout ID (see sluice rollout list)"}
		}
		if err == nil {
			cfg.rolloutID = pos[0]
		}
	case "rollout help", "rollout -h", "rollout --help":
		return cfg, errHelp
	default:
		return cfg, &usageError{fmt.Sprintf("unknown command %q", cfg.command)}
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		var ue *usageError
		if !errors.As(err, &ue) {
			err = &usageError{err.Error()}
		}
		return cfg, err
	}
	if cfg.output != "" && cfg.output != "table" && cfg.output != "json" {
		return cfg, &usageError{fmt.Sprintf("-o %s: want table or json", cfg.output)}
	}
	if cfg.limit < 0 {
		return cfg, &usageError{"--limit must be 0 or more"}
	}
	return cfg, nil
}

// parseInterspersed parses flags wherever they are among the positional
// arguments (the flag package stops at the first positional one), so
// `sluice rollout rollback ID --reason x` works. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func noArgs(command string, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Sprintf("sluice %s takes no arguments, got %q", command, strings.Join(args, " "))}
	}
	return nil
}

func run(ctx context.Context, cfg config, d deps) error {
	switch cfg.command {
	case "version":
		_, err := fmt.Fprintln(d.stdout, "sluice", version)
		return err
	case "login":
		return runLogin(ctx, cfg, d)
	}
	s, err := connect(d)
	if err != nil {
		return err
	}
	switch cfg.command {
	case "status":
		return runStatus(ctx, cfg, d, s)
	case "rollout list":
		return runRolloutList(ctx, cfg, d, s)
	case "rollout watch":
		return runRolloutWatch(ctx, cfg, d, s)
	case "rollout rollback", "rollout pause", "rollout resume":
		return runRolloutAction(ctx, cfg, d, s)
	}
	return fmt.Errorf("unhandled command %q", cfg.command)
}

// isTerminal reports whether f is a character device (a terminal, for
// stdin), without golang.org/x/term.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// sttyEcho turns the terminal's echo on or off with stty(1).
func sttyEcho(on bool) error {
	arg := "-echo"
	if on {
		arg = "echo"
	}
	cmd := exec.Command("stty", arg)
	cmd.Stdin = os.Stdin
	return cmd.Run()
}
