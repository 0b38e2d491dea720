package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Opt configures an Agent. Options are validated once, in New.
type Opt func(*config)

type config struct {
	controlPlane   string
	bootstrapToken string
	dataDir        string
	registry       *catalog.Registry
	runtime        *runtime.Runtime
	logger         *slog.Logger
	name           string
	version        string
	pollWait       time.Duration
	heartbeat      time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	applyTimeout   time.Duration
	httpClient     *http.Client
	allowHTTP      bool
	prepareInputs  func(context.Context, []*pipeline.Plan) error
	kafka          []kgo.Opt
}

// ControlPlane sets the control plane's base URL
// ("https://sluice.example.com"). Required.
func ControlPlane(u string) Opt {
	return func(c *config) { c.controlPlane = strings.TrimRight(u, "/") }
}

// BootstrapToken sets the one-time "slb_" token the agent registers with
// when the data directory holds no credential yet (default none: the data
// directory must hold a credential). It is spent by the registration and
// never written anywhere.
func BootstrapToken(t string) Opt { return func(c *config) { c.bootstrapToken = t } }

// DataDir sets the directory of the credential and the cache of
// assignments and bundles (see the package doc). Required; created 0700
// when missing.
func DataDir(dir string) Opt { return func(c *config) { c.dataDir = dir } }

// Registry sets the operator registry bundles are compiled against.
// Required.
func Registry(r *catalog.Registry) Opt { return func(c *config) { c.registry = r } }

// Runtime sets the runtime the assigned pipelines run on. Required. The
// agent calls its Apply and Status; closing it stays with the caller.
func Runtime(rt *runtime.Runtime) Opt { return func(c *config) { c.runtime = rt } }

// Logger sets the structured logger (default: discard).
func Logger(l *slog.Logger) Opt { return func(c *config) { c.logger = l } }

// Name sets how the runner is shown by the control plane (default: the
// host name).
func Name(n string) Opt { return func(c *config) { c.name = n } }

// Version sets the runner version sent at registration and in status
// reports (default "dev").
func Version(v string) Opt { return func(c *config) { c.version = v } }

// PollWait sets how long the control plane may hold a long-poll for
// assignments (default 30s; at most agentproto.MaxWait).
func PollWait(d time.Duration) Opt { return func(c *config) { c.pollWait = d } }

// HeartbeatInterval sets how often a status report is posted when nothing
// changes (default agentproto.HeartbeatInterval).
func HeartbeatInterval(d time.Duration) Opt { return func(c *config) { c.heartbeat = d } }

// RetryBackoff sets the bounds of the jittered exponential back-off after
// a failed call to the control plane (default 1s to 30s). A refused
// credential retries at max.
func RetryBackoff(min, max time.Duration) Opt {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// ApplyTimeout bounds how long one apply may take to stop the pipelines it
// replaces or removes, which finish in-flight work and commit first
// (default 30s).
func ApplyTimeout(d time.Duration) Opt { return func(c *config) { c.applyTimeout = d } }

// HTTPClient sets the client for the control plane, for a custom CA or
// proxy (default: a client with the system's roots and proxy settings).
// Its Timeout must be zero or longer than PollWait.
func HTTPClient(cl *http.Client) Opt { return func(c *config) { c.httpClient = cl } }

// AllowHTTP lets the agent talk plain HTTP to a control plane that is not
// on a loopback address (default: https, or http to loopback only, since
// the bootstrap token and credential travel in every request).
func AllowHTTP() Opt { return func(c *config) { c.allowHTTP = true } }

// PrepareInputs sets a function called with the plans about to start or
// change, before they are applied; its error is logged, not fatal. The
// runner uses it on the embedded cluster to create missing input topics
// (default: none).
func PrepareInputs(f func(context.Context, []*pipeline.Plan) error) Opt {
	return func(c *config) { c.prepareInputs = f }
}

// Kafka gives the agent its own connection to the pipelines' cluster
// (seed brokers and client options: TLS, SASL), for what it does beside
// the runtime: reading each pipeline's DLQ topic (read_committed) for the
// DLQ viewer, DLQ replays, and, with record previews, the keys behind hot
// key hashes (default: none, and then none of these is done).
func Kafka(brokers []string, opts ...kgo.Opt) Opt {
	return func(c *config) {
		c.kafka = append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	}
}

func defaults() config {
	return config{
		logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		version:      "dev",
		pollWait:     30 * time.Second,
		heartbeat:    agentproto.HeartbeatInterval,
		backoffMin:   time.Second,
		backoffMax:   30 * time.Second,
		applyTimeout: 30 * time.Second,
		httpClient:   &http.Client{},
	}
}

// ConfigError is an invalid option, named by the option it came from.
type ConfigError struct {
	Option string
	Err    error
}

func (e *ConfigError) Error() string { return "agent: " + e.Option + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func (c *config) validate() error {
	var errs []error
	bad := func(opt, format string, args ...any) {
		errs = append(errs, &ConfigError{Option: opt, Err: fmt.Errorf(format, args...)})
	}
	if c.controlPlane == "" {
		bad("ControlPlane", "required")
	} else if u, err := url.Parse(c.controlPlane); err != nil {
		bad("ControlPlane", "%v", err)
	} else {
		switch {
		case u.Host == "":
			bad("ControlPlane", "%q has no host", c.controlPlane)
		case u.Scheme == "https":
		case u.Scheme == "http" && (c.allowHTTP || loopback(u.Hostname())):
		case u.Scheme == "http":
			bad("ControlPlane", "%q is plain HTTP to a remote host: the credential would travel in clear; use https (or AllowHTTP)", c.controlPlane)
		default:
			bad("ControlPlane", "%q: the scheme must be https or http", c.controlPlane)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			bad("ControlPlane", "%q must not have a query or fragment", c.controlPlane)
		}
	}
	if c.bootstrapToken != "" && !strings.HasPrefix(c.bootstrapToken, agentproto.BootstrapPrefix) {
		// The token itself is never echoed, even in an error.
		bad("BootstrapToken", "not a bootstrap token (they start with %q)", agentproto.BootstrapPrefix)
	}
	if c.dataDir == "" {
		bad("DataDir", "required")
	}
	if c.registry == nil {
		bad("Registry", "required")
	}
	if c.runtime == nil {
		bad("Runtime", "required")
	}
	if c.logger == nil {
		bad("Logger", "nil")
	}
	if c.pollWait <= 0 || c.pollWait > agentproto.MaxWait {
		bad("PollWait", "%v must be positive and at most %v", c.pollWait, agentproto.MaxWait)
	}
	if c.heartbeat <= 0 {
		bad("HeartbeatInterval", "%v must be positive", c.heartbeat)
	}
	if c.backoffMin <= 0 || c.backoffMax < c.backoffMin {
		bad("RetryBackoff", "need 0 < min <= max, got %v and %v", c.backoffMin, c.backoffMax)
	}
	if c.applyTimeout <= 0 {
		bad("ApplyTimeout", "%v must be positive", c.applyTimeout)
	}
	if c.httpClient == nil {
		bad("HTTPClient", "nil")
	} else if t := c.httpClient.Timeout; t != 0 && t <= c.pollWait {
		bad("HTTPClient", "timeout %v would cut long-polls of %v short", t, c.pollWait)
	}
	if c.name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "runner"
		}
		c.name = h
	}
	return errors.Join(errs...)
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
