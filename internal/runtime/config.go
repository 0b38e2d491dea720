package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt configures a Runtime. Options are validated once, in New.
type Opt func(*config)

type config struct {
	brokers        []string
	kafkaOpts      []kgo.Opt
	logger         *slog.Logger
	registerer     prometheus.Registerer
	commitInterval time.Duration
	instanceID     string
	partitions     int32
	replication    int16
	backoffMin     time.Duration
	backoffMax     time.Duration
	stepTimeout    time.Duration
	sessionTimeout time.Duration
	txnTimeout     time.Duration
	maxPoll        int
	stateDir       string
	idleTimeout    time.Duration
	lag            lagConfig // lag.go
}

// What a pipeline's consumer asks a broker for in one fetch: at most
// DefaultFetchMaxBytes per response and DefaultFetchMaxPartitionBytes per
// partition, where franz-go's defaults are 50 MiB and 1 MiB. A pipeline
// takes at most 5,000 records per poll, and its client keeps one fetch per
// broker buffered ahead of the poll: in a runner that hosts many pipelines,
// a smaller fetch bounds the memory each one holds while it catches up.
// With the in-process broker (docs/performance.md, 2026-12-06) the runner
// also used about a fifth less CPU per record than with franz-go's
// defaults, and less than half with 24 partitions, where a response of
// the defaults reaches 24 MiB.
const (
	DefaultFetchMaxBytes          = 1 << 20
	DefaultFetchMaxPartitionBytes = 256 << 10
)

// Brokers sets the seed brokers. Required.
func Brokers(addrs ...string) Opt { return func(c *config) { c.brokers = addrs } }

// KafkaOptions adds client options to every client the runtime makes: TLS,
// SASL, client ID. Group, topic and transaction options are the runtime's;
// fetch sizes (DefaultFetchMaxBytes) are defaults these options override.
func KafkaOptions(opts ...kgo.Opt) Opt {
	return func(c *config) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}

// Logger sets the structured logger (default: discard).
func Logger(l *slog.Logger) Opt { return func(c *config) { c.logger = l } }

// Registerer registers the runtime's Prometheus metrics (default: none).
func Registerer(r prometheus.Registerer) Opt { return func(c *config) { c.registerer = r } }

// CommitInterval is how long one exactly-once transaction (or, at least
// once, one offset commit) collects records (default 100ms).
func CommitInterval(d time.Duration) Opt { return func(c *config) { c.commitInterval = d } }

// InstanceID names this runner among the runners sharing pipelines; it is
// part of every transactional ID, so two live runners must not share one
// (default: a random ID per process).
func InstanceID(id string) Opt { return func(c *config) { c.instanceID = id } }

// TopicDefaults sets partitions and replication for the output, DLQ and
// repartition topics the runtime creates when they are missing (default:
// the source topic's partition count, replication 1). partitions <= 0
// keeps the source's count.
func TopicDefaults(partitions int32, replication int16) Opt {
	return func(c *config) { c.partitions, c.replication = partitions, replication }
}

// RetryBackoff bounds the wait before a failed pipeline restarts (default
// 250ms doubling up to 30s).
func RetryBackoff(min, max time.Duration) Opt {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// StuckAfter is how long one record may take in the operator chain before
// the pipeline is reported stuck and restarted (default 8s). It must be
// shorter than the transaction timeout, or the broker would abort a stuck
// pipeline's transaction before the runner noticed.
func StuckAfter(d time.Duration) Opt { return func(c *config) { c.stepTimeout = d } }

// SessionTimeout sets the consumer-group session timeout: how long the
// group waits for a runner that stopped answering before moving its
// partitions (default: the client's 45s).
func SessionTimeout(d time.Duration) Opt { return func(c *config) { c.sessionTimeout = d } }

// TransactionTimeout is how long the broker waits before aborting a
// transaction of a runner that died mid-way; the pipeline's partitions are
// blocked for at most this long after a crash (default 10s).
func TransactionTimeout(d time.Duration) Opt { return func(c *config) { c.txnTimeout = d } }

// StateDir is the directory of the on-disk state stores of pipelines with
// `state: {store: disk}`: <dir>/<pipeline>/<step>/<partition> (default:
// sluice-state-<instance ID> in the system's temporary directory). Losing it
// loses nothing: stores are restored from their changelog topics.
func StateDir(dir string) Opt { return func(c *config) { c.stateDir = dir } }

// IdleTimeout is how long a task of a stateful step may have no records
// before its stream time moves on with processing time, so that windows on
// a quiet partition close (default 30s). Once idle, the stream time goes
// forward by the processing time passed since the task's last record, and
// then on every check (at most every second) by the time since the last.
func IdleTimeout(d time.Duration) Opt { return func(c *config) { c.idleTimeout = d } }

func defaults() config {
	return config{
		logger:         slog.New(slog.DiscardHandler),
		commitInterval: 100 * time.Millisecond,
		replication:    1,
		backoffMin:     250 * time.Millisecond,
		backoffMax:     30 * time.Second,
		stepTimeout:    8 * time.Second,
		txnTimeout:     10 * time.Second,
		maxPoll:        5000,
		idleTimeout:    30 * time.Second,
	}
}

func (c *config) validate() error {
	var errs []error
	if len(c.brokers) == 0 {
		errs = append(errs, errors.New("runtime: no brokers"))
	}
	if c.commitInterval <= 0 {
		errs = append(errs, fmt.Errorf("runtime: commit interval %v must be positive", c.commitInterval))
	}
	if c.backoffMin <= 0 || c.backoffMax < c.backoffMin {
		errs = append(errs, fmt.Errorf("runtime: retry backoff %v..%v is not a range", c.backoffMin, c.backoffMax))
	}
	if c.replication <= 0 {
		errs = append(errs, fmt.Errorf("runtime: replication factor %d must be positive", c.replication))
	}
	if c.stepTimeout <= 0 {
		errs = append(errs, fmt.Errorf("runtime: stuck timeout %v must be positive", c.stepTimeout))
	}
	if c.txnTimeout <= c.stepTimeout {
		errs = append(errs, fmt.Errorf("runtime: transaction timeout %v must be longer than the stuck timeout %v", c.txnTimeout, c.stepTimeout))
	}
	if c.idleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("runtime: idle timeout %v must be positive", c.idleTimeout))
	}
	if c.stateDir != "" {
		if fi, err := os.Stat(c.stateDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("runtime: state directory %s is not a directory", c.stateDir))
		}
	}
	if c.logger == nil {
		errs = append(errs, errors.New("runtime: nil logger"))
	}
	return errors.Join(errs...)
}
