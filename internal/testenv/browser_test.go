package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseBrowserEnv: exit 3 from scripts/browser-env.sh (as `make test`
// records it) skips, a file naming a missing tool fails, a good one loads.
func TestParseBrowserEnv(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"chromium", "node", "playwright-core"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := "CHROMIUM=" + filepath.Join(dir, "chromium") + "\nNODE=" + filepath.Join(dir, "node") +
		"\nPLAYWRIGHT_CORE=" + filepath.Join(dir, "playwright-core") + "\nBROWSER_PINS=x\n"

	env, skip, err := parseBrowserEnv([]byte(good))
	if err != nil || skip != "" || env["NODE"] != filepath.Join(dir, "node") {
		t.Errorf("good file: env %v, skip %q, err %v", env, skip, err)
	}

	_, skip, err = parseBrowserEnv([]byte("BROWSER_ENV_EXIT=3\n"))
	if err != nil || !strings.Contains(skip, "exit 3") {
		t.Errorf("exit 3: skip %q, err %v; want a skip naming exit 3", skip, err)
	}

	missing := strings.Replace(good, filepath.Join(dir, "chromium"), filepath.Join(dir, "no-chromium"), 1)
	if _, skip, err = parseBrowserEnv([]byte(missing)); err == nil || skip != "" {
		t.Errorf("missing chromium: skip %q, err %v; want an error", skip, err)
	}
	if _, skip, err = parseBrowserEnv([]byte("NODE=/usr/bin/node\n")); err == nil || skip != "" {
		t.Errorf("no CHROMIUM line: skip %q, err %v; want an error", skip, err)
	}
}

// TestArtifactsDir: $LTIGRADE_ARTIFACTS/<test name>, emptied once per
// process so an old run's screenshot cannot pass for a new one.
func TestArtifactsDir(t *testing.T) {
	base := t.TempDir()
	t.Setenv("LTIGRADE_ARTIFACTS", base)
	stale := filepath.Join(base, "TestX_sub_case", "old.png")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := artifactsDir("/nonexistent-root", "TestX/sub case")
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(base, "TestX_sub_case") {
		t.Errorf("dir %s, want %s", dir, filepath.Join(base, "TestX_sub_case"))
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale screenshot still there (%v)", err)
	}
	// A second browser in the same test keeps the first one's screenshots.
	fresh := filepath.Join(dir, "new.png")
	if err := os.WriteFile(fresh, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := artifactsDir("/nonexistent-root", "TestX/sub case"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("second call removed this run's screenshot: %v", err)
	}
}
