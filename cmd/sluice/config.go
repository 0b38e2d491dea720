package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// defaultURL is where `make dev` serves the control plane.
const defaultURL = "http://127.0.0.1:8080"

// settings are where the CLI connects and as whom: the config file that
// `sluice login` writes, overridden field by field by SLUICE_URL,
// SLUICE_TOKEN and SLUICE_PROJECT_ID (so `set -a; . .sluice/credentials;
// set +a` after `make dev` works without a login).
type settings struct {
	URL       string `json:"url"`
	Token     string `json:"token"`
	ProjectID string `json:"project_id"`
}

// configPath is $SLUICE_CONFIG, else $XDG_CONFIG_HOME/sluice/config.json,
// else ~/.config/sluice/config.json.
func configPath(getenv func(string) string) (string, error) {
	if p := getenv("SLUICE_CONFIG"); p != "" {
		return p, nil
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "sluice", "config.json"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither SLUICE_CONFIG nor HOME is set: set SLUICE_CONFIG to a file for the CLI's settings")
	}
	return filepath.Join(home, ".config", "sluice", "config.json"), nil
}

// readSettings reads the config file (a missing one is empty settings).
func readSettings(path string) (settings, error) {
	var s settings
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s is not a sluice config file (%v): run `sluice login` to write it again", path, err)
	}
	return s, nil
}

// withEnv applies the environment's overrides.
func (s settings) withEnv(getenv func(string) string) settings {
	if v := getenv("SLUICE_URL"); v != "" {
		s.URL = v
	}
	if v := getenv("SLUICE_TOKEN"); v != "" {
		s.Token = v
	}
	if v := getenv("SLUICE_PROJECT_ID"); v != "" {
		s.ProjectID = v
	}
	if s.URL == "" {
		s.URL = defaultURL
	}
	return s
}

// writeSettings replaces the config file atomically. The file holds a
// secret, so it is 0600 in a 0700 directory, and a file that existed with
// looser permissions is replaced, not rewritten in place.
func writeSettings(path string, s settings) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".config-*.json") // 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
