package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// The data directory's layout. Every file is written to a temporary file
// in the same directory, synced and renamed over the old one, so a crash
// leaves the old file or the new one, never half of either.
const (
	credentialFile  = "credential.json"  // 0600: the runner credential and ids
	assignmentsFile = "assignments.json" // the assignments as applied
	bundlesDir      = "bundles"          // one file per bundle, named by digest
)

// credential is what registration leaves in the data directory.
type credential struct {
	RunnerID   string `json:"runner_id"`
	FleetID    string `json:"fleet_id"`
	Credential string `json:"credential"`
	// ControlPlane is the URL registered with; a credential is only good
	// there.
	ControlPlane string `json:"control_plane"`
}

// dataDir is the agent's directory on disk.
type dataDir string

func (d dataDir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// prepare creates the directory and proves it writable, before a
// registration spends the bootstrap token on a credential that could not
// be kept.
func (d dataDir) prepare() error {
	if err := os.MkdirAll(d.path(bundlesDir), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(string(d), ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// hasCredential reports whether a credential file is present.
func (d dataDir) hasCredential() bool {
	_, err := os.Stat(d.path(credentialFile))
	return err == nil
}

// loadCredential returns the saved credential, or nil when there is none.
func (d dataDir) loadCredential() (*credential, error) {
	data, err := os.ReadFile(d.path(credentialFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c credential
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", d.path(credentialFile), err)
	}
	if !strings.HasPrefix(c.Credential, agentproto.CredentialPrefix) {
		return nil, fmt.Errorf("%s holds no runner credential", d.path(credentialFile))
	}
	return &c, nil
}

func (d dataDir) saveCredential(c *credential) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(d.path(credentialFile), data)
}

// loadAssignments returns the cached assignments, or nil when there are
// none.
func (d dataDir) loadAssignments() (*agentproto.Assignments, error) {
	data, err := os.ReadFile(d.path(assignmentsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var as agentproto.Assignments
	if err := json.Unmarshal(data, &as); err != nil {
		return nil, fmt.Errorf("%s: %w", d.path(assignmentsFile), err)
	}
	return &as, nil
}

func (d dataDir) saveAssignments(as *agentproto.Assignments) error {
	data, err := json.MarshalIndent(as, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(d.path(assignmentsFile), data)
}

// loadBundle returns the cached bundle's bytes, or nil when it is not
// cached. Callers verify them (agentproto.DecodeBundle) like a download.
func (d dataDir) loadBundle(digest string) ([]byte, error) {
	data, err := os.ReadFile(d.path(bundlesDir, digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func (d dataDir) saveBundle(digest string, data []byte) error {
	return writeFile(d.path(bundlesDir, digest), data)
}

func (d dataDir) removeBundle(digest string) error {
	err := os.Remove(d.path(bundlesDir, digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// pruneBundles removes the cached bundles not in keep, and leftovers of
// interrupted writes.
func (d dataDir) pruneBundles(keep map[string]bool) error {
	entries, err := os.ReadDir(d.path(bundlesDir))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.Remove(d.path(bundlesDir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// writeFile replaces path with data, mode 0600, atomically.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// The rename is durable once the directory is synced.
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}

// validDigest reports whether s is a hex SHA-256, the only thing a digest
// may be: it becomes a file name and a URL path element.
func validDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}
