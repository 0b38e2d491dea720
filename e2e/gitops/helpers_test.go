package gitops

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"testing"
)

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed (make setup installs it): %v", name, err)
	}
	return p
}

// sh runs a command line in bash in dir, as a user would paste it.
func sh(t *testing.T, dir, cmd string) (string, error) {
	t.Helper()
	c := exec.Command("bash", "-c", cmd)
	c.Dir = dir
	c.Env = append(c.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := c.CombinedOutput()
	return string(out), err
}

// post sends a JSON body with a bearer token and decodes a 2xx answer.
func post(t *testing.T, url, token string, body, into any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return do(t, req, into)
}

func get(t *testing.T, url, token string, into any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req, into)
}

func do(t *testing.T, req *http.Request, into any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}
