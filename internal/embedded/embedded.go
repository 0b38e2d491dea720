// Package embedded runs an in-process Kafka-protocol cluster (franz-go's
// kfake) on a fixed local address, for development: `runner run` without
// --brokers starts one, and ordinary Kafka clients (kcat, kgo, librdkafka)
// connect to it as to any broker.
//
// The cluster keeps everything in memory and is gone when the process ends.
// Topics are created by the admin API (CreateTopics, as the runtime does for
// its outputs); clients asking for a missing topic do not create it unless
// AutoCreateTopics is given, as on a production cluster configured with
// auto.create.topics.enable=false.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is where the cluster listens unless told otherwise.
const DefaultAddr = "127.0.0.1:9092"

// Opt configures a Cluster.
type Opt func(*config)

type config struct {
	autoCreate bool
	partitions int
	minSession time.Duration
	advertise  string
	extra      []kfake.Opt
}

// AutoCreateTopics lets clients create a topic by asking for it (producing
// to or fetching metadata of a missing topic), overriding the default of
// creating topics only through the admin API.
func AutoCreateTopics() Opt { return func(c *config) { c.autoCreate = true } }

// DefaultPartitions sets the partition count of topics created without one
// (auto-created, or CreateTopics with -1), overriding the default of 1.
func DefaultPartitions(n int) Opt { return func(c *config) { c.partitions = n } }

// GroupMinSessionTimeout sets the smallest consumer-group session timeout
// the cluster accepts, overriding the default of 100ms (kfake's own default
// is 6s, which would reject the short timeouts tests use).
func GroupMinSessionTimeout(d time.Duration) Opt { return func(c *config) { c.minSession = d } }

// Advertise sets the host clients are told to connect to, overriding the
// default of the listen host (or 127.0.0.1 when listening on all
// interfaces).
func Advertise(host string) Opt { return func(c *config) { c.advertise = host } }

// KfakeOptions passes options straight to kfake (SASL, TLS, seed topics).
func KfakeOptions(opts ...kfake.Opt) Opt {
	return func(c *config) { c.extra = append(c.extra, opts...) }
}

// Cluster is a running in-process cluster. Close it when done.
type Cluster struct {
	c     *kfake.Cluster
	addrs []string
}

// Start listens on addr (host:port; port 0 picks a free one) and starts a
// one-broker cluster there. ctx bounds the start only, not the cluster's
// life: stop it with Close.
func Start(ctx context.Context, addr string, opts ...Opt) (*Cluster, error) {
	cfg := config{partitions: 1, minSession: 100 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	if addr == "" {
		addr = DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: address %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("embedded kafka: address %q: bad port", addr)
	}
	if cfg.partitions <= 0 {
		return nil, fmt.Errorf("embedded kafka: default partitions %d must be positive", cfg.partitions)
	}
	advertise := cfg.advertise
	if advertise == "" {
		advertise = host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			advertise = "127.0.0.1"
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	_, realPort, _ := net.SplitHostPort(ln.Addr().String())
	adv := hostPort(net.JoinHostPort(advertise, realPort))
	// kfake asks its listen function for 127.0.0.1:<port>; we hand it the
	// listener we opened on the address we were given, reporting the
	// advertised address so metadata responses point clients at it.
	var used atomic.Bool
	listenFn := func(string, string) (net.Listener, error) {
		if used.Swap(true) {
			return nil, errors.New("embedded kafka: one broker only")
		}
		return advertised{Listener: ln, addr: adv}, nil
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenFn),
		kfake.DefaultNumPartitions(cfg.partitions),
		kfake.GroupMinSessionTimeout(cfg.minSession),
	}
	if cfg.autoCreate {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	c, err := kfake.NewCluster(append(kopts, cfg.extra...)...)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	return &Cluster{c: c, addrs: c.ListenAddrs()}, nil
}

// Addrs returns the advertised broker addresses, for clients' seed lists.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// Kfake returns the underlying kfake cluster, for tests that inject faults.
func (c *Cluster) Kfake() *kfake.Cluster { return c.c }

// Close stops the cluster and closes its listener. It is safe to call more
// than once.
func (c *Cluster) Close() { c.c.Close() }

// advertised is a listener whose Addr is the address clients should dial.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

type hostPort string

func (hostPort) Network() string  { return "tcp" }
func (h hostPort) String() string { return string(h) }
