package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/agent"
)

// bootstrapTokenEnv holds the bootstrap token when it is not given as a
// flag, so that it does not show in process listings.
const bootstrapTokenEnv = "SLUICE_BOOTSTRAP_TOKEN"

// agentConfig is the command line of `runner agent`: the shared Kafka and
// runtime flags, and the control plane.
type agentConfig struct {
	runtimeConfig
	controlPlane   string
	bootstrapToken string
	dataDir        string
	name           string
	allowHTTP      bool
}

// register defines agent's flags on fs, writing into c.
func (c *agentConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.controlPlane, "control-plane", "", "control plane `URL` (https; http only to loopback or with --allow-http); required")
	fs.StringVar(&c.bootstrapToken, "bootstrap-token", "", "one-time bootstrap `token` to register with when --data-dir holds no credential; prefer $"+bootstrapTokenEnv+", which process listings do not show")
	fs.StringVar(&c.dataDir, "data-dir", ".sluice/agent", "`directory` of the runner credential and the cache of assignments and bundles the runner restarts from when the control plane is down")
	fs.StringVar(&c.name, "name", "", "how the control plane shows this runner (default: the host name)")
	fs.BoolVar(&c.allowHTTP, "allow-http", false, "allow plain HTTP to a control plane that is not on loopback (the credential travels in clear)")
	c.runtimeConfig.register(fs, "", "`directory` of the on-disk state of pipelines with state: {store: disk} (default DATA-DIR/state); deleting it loses nothing (state is restored from the changelog topics)")
}

// complete fills what comes from elsewhere than the flags: the token from
// the environment, the state directory under the data directory.
func (c *agentConfig) complete() {
	if c.bootstrapToken == "" {
		c.bootstrapToken = os.Getenv(bootstrapTokenEnv)
	}
	if c.stateDir == "" && c.dataDir != "" {
		c.stateDir = filepath.Join(c.dataDir, "state")
	}
}

// validate checks what can be checked without touching the network or the
// disk; agent.New checks the rest (URL, token, data directory).
func (c *agentConfig) validate() error {
	var errs []error
	if c.controlPlane == "" {
		errs = append(errs, errors.New("agent needs --control-plane URL"))
	}
	if c.dataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	errs = append(errs, c.runtimeConfig.validate())
	return errors.Join(errs...)
}

// runAgent is `runner agent`: it runs the pipelines the control plane
// assigns to this runner until ctx ends, then shuts down within
// --shutdown-timeout. Logs go to stderr.
func runAgent(ctx context.Context, c agentConfig, reg *catalog.Registry, stderr io.Writer) error {
	log := c.logger(stderr)
	return withRuntime(ctx, &c.runtimeConfig, log, func(ctx context.Context, k *kafkaRuntime) error {
		opts := []agent.Opt{
			agent.ControlPlane(c.controlPlane),
			agent.DataDir(c.dataDir),
			agent.Registry(reg),
			agent.Runtime(k.rt),
			agent.Logger(log),
			agent.Version(version),
			agent.ApplyTimeout(c.shutdown),
			agent.Kafka(k.brokers, k.kafka...),
		}
		if c.bootstrapToken != "" {
			opts = append(opts, agent.BootstrapToken(c.bootstrapToken))
		}
		if c.name != "" {
			opts = append(opts, agent.Name(c.name))
		}
		if c.allowHTTP {
			opts = append(opts, agent.AllowHTTP())
		}
		if k.createInputs != nil {
			opts = append(opts, agent.PrepareInputs(k.createInputs))
		}
		a, err := agent.New(opts...)
		if err != nil {
			return flagError(err)
		}
		return a.Run(ctx)
	})
}

// flagError names the flags behind the agent's option errors, so the
// message says what to change on the command line.
func flagError(err error) error {
	if errors.Is(err, agent.ErrNoCredential) {
		return fmt.Errorf("%w: give --bootstrap-token or $%s to register", err, bootstrapTokenEnv)
	}
	flags := map[string]string{"ControlPlane": "--control-plane", "BootstrapToken": "--bootstrap-token / $" + bootstrapTokenEnv, "DataDir": "--data-dir"}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
		var ce *agent.ConfigError
		if errors.As(e, &ce) {
			if f, ok := flags[ce.Option]; ok {
				out[i] = fmt.Errorf("%s: %w", f, ce.Err)
			}
		}
	}
	return errors.Join(out...)
}
