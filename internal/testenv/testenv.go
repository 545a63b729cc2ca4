// Package testenv finds what the project's tests need outside Go: the repo
// root, the Python venv (scripts/python-env.sh) of the independent doubles,
// and headless Chromium with playwright-core (scripts/browser-env.sh,
// browser.go). It is imported by tests only.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// RepoRoot is the folder holding go.mod above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// Python is the venv interpreter with oauthlib and PyJWT: $LTIGRADE_PYTHON
// (set by `make test`), else built once per process by scripts/python-env.sh.
func Python() (string, error) {
	if p := os.Getenv("LTIGRADE_PYTHON"); p != "" {
		return p, nil
	}
	pythonOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			pythonErr = err
			return
		}
		var stderr bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "python-env.sh"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			pythonErr = fmt.Errorf("scripts/python-env.sh: %v\n%s", err, stderr.String())
			return
		}
		pythonPath = strings.TrimSpace(string(out))
	})
	return pythonPath, pythonErr
}

// LockedBuffer collects a child's output while the child writes to it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
