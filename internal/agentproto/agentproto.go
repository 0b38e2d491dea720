// Package agentproto is the wire protocol between `runner agent` and the
// control plane (DESIGN.md §1, §5): JSON over HTTPS, every call made by the
// runner (outbound only). It holds the paths, the messages and the bundle
// format, and nothing else, so that the runner binary can speak it without
// linking the control plane.
//
// The conversation:
//
//  1. POST RegisterPath with `Authorization: Bearer <bootstrap token>` (a
//     one-time "slb_" token minted for one fleet) and a RegisterRequest. The
//     answer is a RegisterResponse holding the runner credential ("slr_"),
//     which authenticates every later call. A bootstrap token is spent by
//     its registration; presenting it again is refused (401).
//  2. GET AssignmentsPath?generation=N&wait=30s long-polls the runner's
//     desired state. The control plane answers at once when the desired
//     state's generation differs from N (N=0 always answers), otherwise when
//     it changes or the wait runs out (then with the same generation, and
//     the runner polls again).
//  3. GET BundlesPath + digest for each assigned bundle it does not have;
//     the runner checks that the body's SHA-256 is the digest before it uses
//     it.
//  4. POST StatusPath with a StatusReport after each apply and at least every
//     HeartbeatInterval: it doubles as the heartbeat.
//
// Errors are application/problem+json with a status: 401 means the
// credential is unknown or revoked (register again only with a new
// bootstrap token), 404 on a bundle means it is not assigned to this
// runner's fleet.
package agentproto

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/sluicehq/sluice/observability"
)

// Paths of the agent API, relative to the control plane's URL.
const (
	RegisterPath    = "/api/v1/agent/register"
	AssignmentsPath = "/api/v1/agent/assignments"
	BundlesPath     = "/api/v1/agent/bundles/"
	StatusPath      = "/api/v1/agent/status"
)

// Token prefixes: bootstrap tokens and runner credentials are told apart
// from API tokens ("slc_") at a glance and by the server.
const (
	BootstrapPrefix  = "slb_"
	CredentialPrefix = "slr_"
)

// HeartbeatInterval is how often a runner reports at least; a runner not
// heard from for three intervals is shown as lost.
const HeartbeatInterval = 10 * time.Second

// MaxWait is the longest long-poll the control plane holds.
const MaxWait = 60 * time.Second

// RegisterRequest is the body of a registration.
type RegisterRequest struct {
	// Name is how the runner is shown (host name, pod name).
	Name string `json:"name"`
	// Version is the runner binary's version.
	Version string `json:"version"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	RunnerID string `json:"runner_id"`
	FleetID  string `json:"fleet_id"`
	// Credential is shown once; the runner keeps it on disk (0600).
	Credential string `json:"credential"`
}

// Assignments is a runner's desired state.
type Assignments struct {
	// Generation changes whenever the desired state of the runner changes.
	Generation int64        `json:"generation"`
	Pipelines  []Assignment `json:"pipelines"`
	// Monitor is set on the fleet's monitor runner only (one live runner
	// per fleet, the longest registered; another is chosen when it goes
	// away): the consumer groups of every pipeline deployed to the fleet,
	// whose lag it samples and reports in StatusReport.Monitor whether or
	// not it runs them, so that a pipeline no runner runs still shows its
	// lag. It is not part of the generation: the runner takes it from
	// every answer, also from one whose generation it has applied, so a
	// new monitor starts within a long-poll's wait.
	Monitor []Watch `json:"monitor,omitempty"`
	// Replays are DLQ replay requests this runner is to carry out (only
	// ever the fleet's monitor runner, which claims them). Like Monitor
	// they come with every answer, not with a generation; the runner
	// carries out each ID once (it remembers them on disk) and reports
	// the outcome in StatusReport.Replays.
	Replays []ReplayRequest `json:"replays,omitempty"`
}

// RecordPreviews is a project's setting that lets payload and key
// previews leave its runners (docs/security.md). The zero value is the
// default: off, and then no record key or value is ever reported.
type RecordPreviews struct {
	Enabled bool `json:"enabled"`
	// Redact lists field paths ("card.number", "email") whose values are
	// replaced by "[redacted]" in a JSON preview.
	Redact []string `json:"redact"`
	// MaxBytes caps each preview (default DefaultPreviewBytes, at most
	// MaxPreviewBytes); a longer one is cut and marked truncated.
	MaxBytes int `json:"max_bytes"`
}

// Preview sizes.
const (
	DefaultPreviewBytes = 1024
	MaxPreviewBytes     = 4096
)

// ReplayRequest asks a runner to re-produce dead letters of a pipeline's
// DLQ to the stage inputs they came from (their sluice.source header),
// with a header HeaderReplayedFrom, in one Kafka transaction.
type ReplayRequest struct {
	ID         string `json:"id"`
	Pipeline   string `json:"pipeline"`
	PipelineID string `json:"pipeline_id"`
	// DLQTopic is the pipeline's DLQ topic; Inputs are the inputs of its
	// stages (source, repartition topics): a dead letter whose source is
	// another topic is not replayed.
	DLQTopic string   `json:"dlq_topic"`
	Inputs   []string `json:"inputs"`
	// Offsets selects dead letters by DLQ partition and offset; UpTo
	// selects every dead letter of a partition up to an offset
	// (inclusive). One of them is set.
	Offsets []DLQOffset `json:"offsets,omitempty"`
	UpTo    []DLQOffset `json:"up_to,omitempty"`
}

// DLQOffset is a record of a DLQ topic.
type DLQOffset struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// HeaderReplayedFrom is added to every replayed record: "<dlq
// topic>/<partition>/<offset>".
const HeaderReplayedFrom = "sluice.replayed-from"

// Replay states.
const (
	ReplayRunning = "running"
	ReplayDone    = "done"
	ReplayFailed  = "failed"
)

// ReplayOutcome is how a replay request went on the runner.
type ReplayOutcome struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Replayed counts the records produced (committed) to the inputs.
	Replayed int      `json:"replayed"`
	Errors   []string `json:"errors,omitempty"`
}

// DLQView is what a runner read of one pipeline's DLQ topic with a
// read_committed client: the last dead letters and totals per reason.
type DLQView struct {
	Topic     string    `json:"topic"`
	SampledAt time.Time `json:"sampled_at"`
	// Total counts every dead letter read since the topic's start (all of
	// its partitions); Reasons splits it by the sluice.reason header.
	Total   int64            `json:"total"`
	Reasons map[string]int64 `json:"reasons"`
	// Letters are the latest dead letters (at most MaxDeadLetters), newest
	// first.
	Letters []DeadLetter `json:"letters"`
	// Previews is true when the letters may carry key, value and header
	// previews (the project enabled record previews).
	Previews bool `json:"previews,omitempty"`
}

// MaxDeadLetters bounds the dead letters of a DLQView.
const MaxDeadLetters = 100

// DeadLetter is one record of a DLQ topic, described by its sluice.*
// headers. Key, Value and the values of headers other than sluice.* are
// previews, present only when the project enabled record previews
// (redacted and capped); KeyHash is always there.
type DeadLetter struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Reason    string    `json:"reason"`
	Error     string    `json:"error"`
	Step      string    `json:"step,omitempty"`
	Revision  string    `json:"revision,omitempty"`
	// SourceTopic, SourcePartition and SourceOffset are where the record
	// was read from (sluice.source): the pipeline's source, or for a
	// record of a later stage whose origin could not be recovered, the
	// repartition topic.
	SourceTopic     string         `json:"source_topic"`
	SourcePartition int32          `json:"source_partition"`
	SourceOffset    int64          `json:"source_offset"`
	Headers         []HeaderReport `json:"headers"`
	KeyHash         string         `json:"key_hash,omitempty"`
	Key             *Preview       `json:"key,omitempty"`
	Value           *Preview       `json:"value,omitempty"`
	// ReplayedFrom is set on a dead letter that was itself replayed.
	ReplayedFrom string `json:"replayed_from,omitempty"`
}

// HeaderReport is a record header: its name always, its value only for
// sluice.* headers or with previews.
type HeaderReport struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

// Preview is a redacted, capped rendering of a key or value: JSON as
// JSON text with the redacted paths replaced, anything else as text
// (invalid UTF-8 as base64 with Encoding "base64").
type Preview struct {
	Text      string `json:"text"`
	Encoding  string `json:"encoding,omitempty"`
	Bytes     int    `json:"bytes"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Watch is a pipeline whose consumer group the monitor runner samples.
type Watch struct {
	Name       string `json:"name"`
	PipelineID string `json:"pipeline_id"`
	Group      string `json:"group"`
	// Topics are the inputs of the pipeline's stages, in stage order (the
	// source, then each repartition topic). Empty when the control plane
	// could not compile the revision: the runner then watches the topics
	// the group has committed offsets for.
	Topics []string `json:"topics,omitempty"`
}

// Assignment is one pipeline the runner should run.
type Assignment struct {
	// Name is the pipeline's metadata.name.
	Name       string `json:"name"`
	PipelineID string `json:"pipeline_id"`
	// Revision is the revision's number, for people.
	Revision int `json:"revision"`
	// Digest is the SHA-256 (hex) of the bundle, fetched from BundlesPath.
	Digest string `json:"digest"`
	// Group is the Kafka consumer group (derived from org, project and
	// pipeline, so projects sharing a cluster never share a group).
	Group string `json:"group"`
	// Commit is the Git commit the bundle was built from.
	Commit string `json:"commit"`
	// Previews is the record previews setting of the pipeline's project;
	// absent means off.
	Previews *RecordPreviews `json:"previews,omitempty"`
}

// RevisionLabel is what a runner calls an assignment's revision in its
// status, logs and DLQ headers: the first 12 hex digits of the bundle
// digest. It names content, not the revision number, so a new revision
// whose bundle is byte for byte the one running (a revert, a commit that
// touched only other pipelines) does not restart the pipeline.
func (a Assignment) RevisionLabel() string {
	if len(a.Digest) > 12 {
		return a.Digest[:12]
	}
	return a.Digest
}

// StatusReport is what a runner posts: the generation it has applied and
// how each pipeline runs. Only counts, offsets, timestamps, states, error
// messages and key hashes cross the boundary, never record keys or values,
// unless the pipeline's project enabled record previews: then dead letters
// and hot keys may carry redacted, capped previews (docs/security.md).
type StatusReport struct {
	// Generation is the generation of the assignments last applied.
	Generation int64  `json:"generation"`
	Version    string `json:"version"`
	// Pipelines is every pipeline the runner runs.
	Pipelines []PipelineStatus `json:"pipelines"`
	// Errors are assignment-level problems: a bundle that could not be
	// fetched, failed its digest or did not compile on this runner.
	Errors []string `json:"errors,omitempty"`
	// Cached is true while the runner runs from its disk cache because the
	// control plane was unreachable at start.
	Cached bool `json:"cached,omitempty"`
	// Monitor is the lag of the groups the runner watches as its fleet's
	// monitor (Assignments.Monitor), absent on other runners. The control
	// plane shows it for a pipeline no live runner reports lag for.
	Monitor []MonitoredLag `json:"monitor,omitempty"`
	// Replays is the outcome of the replay requests of the last
	// assignments.
	Replays []ReplayOutcome `json:"replays,omitempty"`
}

// MonitoredLag is the lag of one watched pipeline's consumer group, as
// the monitor runner sampled it (observability.PipelineLag.Source is
// "monitor"): stage summaries over every partition and the partitions
// that are not fine; no hot keys, restores or store sizes, which need
// the tasks.
type MonitoredLag struct {
	Name  string                     `json:"name"`
	Group string                     `json:"group"`
	Lag   *observability.PipelineLag `json:"lag,omitempty"`
}

// PipelineStatus is one pipeline on one runner.
type PipelineStatus struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	// State is the runtime's: starting, waiting, running, failed, stopped.
	State      string    `json:"state"`
	Error      string    `json:"error,omitempty"`
	Restarts   int       `json:"restarts"`
	Partitions []int32   `json:"partitions"`
	Processed  uint64    `json:"processed"`
	DeadLetter uint64    `json:"dead_letter"`
	Since      time.Time `json:"since"`
	// Lag is the pipeline's lag and skew as this runner last sampled it
	// (absent from older runners and before the first sample): stage
	// summaries over every partition, the partitions this runner holds,
	// and hot keys as hashes. Offsets, counts, rates, timestamps and
	// statuses only.
	Lag *observability.PipelineLag `json:"lag,omitempty"`
	// DLQ is what the runner last read of the pipeline's DLQ topic.
	DLQ *DLQView `json:"dlq,omitempty"`
	// KeyPreviews maps hot key hashes (Lag.HotKeys) to previews of the
	// keys, only when the project enabled record previews.
	KeyPreviews map[string]Preview `json:"key_previews,omitempty"`
}

// Bundle is everything one pipeline revision needs to run: its YAML and
// the side files it reads (scripts, lookups, GeoJSON), named relative to
// the pipeline file's directory, as the compiler opens them.
type Bundle struct {
	// Pipeline is the pipeline's metadata.name.
	Pipeline string `json:"pipeline"`
	// Path is the pipeline file's path in the repository
	// ("pipelines/clicks.yaml"); Files holds it under its base name.
	Path string `json:"path"`
	// Commit is the Git commit the bundle was built from.
	Commit string `json:"commit"`
	// Files maps slash-separated paths, relative to the directory of Path,
	// to their contents.
	Files map[string][]byte `json:"files"`
}

// Encode returns the bundle's canonical bytes and their digest (SHA-256,
// hex). encoding/json sorts map keys, so equal bundles encode equally.
func (b *Bundle) Encode() ([]byte, string, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, "", err
	}
	return data, Digest(data), nil
}

// Digest is the hex SHA-256 of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ErrDigestMismatch means a bundle's bytes are not the ones assigned.
var ErrDigestMismatch = errors.New("bundle digest mismatch")

// DecodeBundle checks data against digest and decodes it. A mismatch is
// ErrDigestMismatch: the bundle must not be used.
func DecodeBundle(data []byte, digest string) (*Bundle, error) {
	if got := Digest(data); got != digest {
		return nil, fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, digest, got)
	}
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", digest, err)
	}
	if b.Pipeline == "" || b.Path == "" {
		return nil, fmt.Errorf("bundle %s: no pipeline or path", digest)
	}
	if _, ok := b.Files[path.Base(b.Path)]; !ok {
		return nil, fmt.Errorf("bundle %s: the pipeline file %s is missing", digest, b.Path)
	}
	return &b, nil
}

// Source is the pipeline file's YAML.
func (b *Bundle) Source() []byte { return b.Files[path.Base(b.Path)] }

// FS serves Files as a read-only file system rooted at the pipeline
// file's directory, for pipeline.Compiler.Files.
func (b *Bundle) FS() fs.FS { return mapFS(b.Files) }

// mapFS is a flat map of files as an fs.FS; directories are implied by the
// paths. It is enough for fs.ReadFile, which is all the compiler uses.
type mapFS map[string][]byte

func (m mapFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if data, ok := m[name]; ok {
		return &mapFile{name: path.Base(name), data: data}, nil
	}
	prefix := name + "/"
	for k := range m {
		if name == "." || strings.HasPrefix(k, prefix) {
			return &mapFile{name: path.Base(name), dir: true}, nil
		}
	}
	if name == "." {
		return &mapFile{name: ".", dir: true}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

type mapFile struct {
	name string
	data []byte
	off  int
	dir  bool
}

func (f *mapFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *mapFile) Close() error               { return nil }
func (f *mapFile) Read(p []byte) (int, error) {
	if f.dir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if f.off >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.off:])
	f.off += n
	return n, nil
}

// fs.FileInfo of a mapFile.
func (f *mapFile) Name() string { return f.name }
func (f *mapFile) Size() int64  { return int64(len(f.data)) }
func (f *mapFile) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (f *mapFile) ModTime() time.Time { return time.Time{} }
func (f *mapFile) IsDir() bool        { return f.dir }
func (f *mapFile) Sys() any           { return nil }
