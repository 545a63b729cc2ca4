package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BrowserArgs are the Chromium flags the browser tests run with. Without the
// background-networking ones Chromium keeps calling Google's services, and a
// closed network refuses those connections noisily; GPU and QUIC are off
// because a headless test machine has neither use for them. The fresh
// profile (--user-data-dir) is added per run by launch.mjs.
var BrowserArgs = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
}

// browserEnvUnreachable is scripts/browser-env.sh's exit code for "the
// package sources cannot be reached" (or "chromium is missing and we may not
// install it"): the one case in which the browser tests skip.
const browserEnvUnreachable = 3

var (
	browserEnvOnce sync.Once
	browserEnvVal  map[string]string
	browserEnvErr  error
	browserEnvSkip string

	artifactsMu    sync.Mutex
	artifactsFresh = map[string]bool{}
)

// loadBrowserEnv reads $LTIGRADE_BROWSER_ENV_FILE (written by `make test`),
// else runs scripts/browser-env.sh itself, once per process.
func loadBrowserEnv() (env map[string]string, skip string, err error) {
	browserEnvOnce.Do(func() {
		var out []byte
		if f := os.Getenv("LTIGRADE_BROWSER_ENV_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				browserEnvErr = fmt.Errorf("LTIGRADE_BROWSER_ENV_FILE: %v", err)
				return
			}
			out = b
		} else {
			root, err := RepoRoot()
			if err != nil {
				browserEnvErr = err
				return
			}
			cmd := exec.Command("bash", filepath.Join(root, "scripts", "browser-env.sh"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			b, err := cmd.Output()
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == browserEnvUnreachable {
				browserEnvSkip = "scripts/browser-env.sh could not install Chromium or playwright-core (exit 3), so there is no browser to test with:\n" + stderr.String()
				return
			}
			if err != nil {
				browserEnvErr = fmt.Errorf("scripts/browser-env.sh: %v\n%s", err, stderr.String())
				return
			}
			out = b
		}
		browserEnvVal, browserEnvSkip, browserEnvErr = parseBrowserEnv(out)
	})
	return browserEnvVal, browserEnvSkip, browserEnvErr
}

// parseBrowserEnv reads scripts/browser-env.sh's KEY=VALUE lines, or the
// BROWSER_ENV_EXIT=3 line `make test` writes in their place when the script
// exits 3 (a skip); a missing or absent tool is an error.
func parseBrowserEnv(out []byte) (env map[string]string, skip string, err error) {
	env = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			env[k] = v
		}
	}
	if env["BROWSER_ENV_EXIT"] == strconv.Itoa(browserEnvUnreachable) {
		return nil, "scripts/browser-env.sh could not install Chromium or playwright-core (exit 3; its message is in the `make test` output above), so there is no browser to test with", nil
	}
	for _, k := range []string{"CHROMIUM", "NODE", "PLAYWRIGHT_CORE"} {
		if env[k] == "" {
			return nil, "", fmt.Errorf("browser environment lacks %s (got %q)", k, out)
		}
		if _, err := os.Stat(env[k]); err != nil {
			return nil, "", fmt.Errorf("browser environment: %s: %v", k, err)
		}
	}
	return env, "", nil
}

// Driver runs headless Chromium for one test: Debian's chromium driven by
// playwright-core (scripts/browser-env.sh). Each Run starts a fresh browser
// on an empty profile, so two Runs are two strangers (a grader and a
// student, say).
type Driver struct {
	Chromium       string
	Node           string
	PlaywrightCore string
	// Artifacts is the folder screenshots go to:
	// $LTIGRADE_ARTIFACTS/<test name>, else <repo>/.cache/artifacts/<test name>.
	// It is emptied when the test first asks for a browser.
	Artifacts string
	// DisableJavaScript runs the pages with JavaScript off (to show a page
	// works without it).
	DisableJavaScript bool
	// StepTimeout bounds each step (default 15s); Timeout the whole Run
	// (default 2m). They stop a hung browser, they measure nothing.
	StepTimeout time.Duration
	Timeout     time.Duration

	t    testing.TB
	root string
}

// Browser returns a Driver for t, skipping t when scripts/browser-env.sh
// exited 3 (package sources unreachable, or chromium missing and not root to
// install it); any other problem fails t.
func Browser(t testing.TB) *Driver {
	t.Helper()
	env, skip, err := loadBrowserEnv()
	if skip != "" {
		t.Skip(skip)
	}
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := artifactsDir(root, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return &Driver{
		Chromium:       env["CHROMIUM"],
		Node:           env["NODE"],
		PlaywrightCore: env["PLAYWRIGHT_CORE"],
		Artifacts:      dir,
		t:              t,
		root:           root,
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactsDir is the test's artifacts folder, emptied the first time this
// process asks for it so no screenshot of an earlier run passes for this one.
func artifactsDir(root, testName string) (string, error) {
	base := os.Getenv("LTIGRADE_ARTIFACTS")
	if base == "" {
		base = filepath.Join(root, ".cache", "artifacts")
	}
	dir := filepath.Join(base, unsafeName.ReplaceAllString(testName, "_"))
	artifactsMu.Lock()
	defer artifactsMu.Unlock()
	if !artifactsFresh[dir] {
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
		artifactsFresh[dir] = true
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// Step is one action of Driver.Run; build it with Goto, Fill, Click,
// WaitFor, WaitText, ReadText or Screenshot.
type Step struct {
	Goto       *string `json:"goto,omitempty"`
	Fill       *string `json:"fill,omitempty"`
	Value      string  `json:"value,omitempty"`
	Click      *string `json:"click,omitempty"`
	Wait       *string `json:"wait,omitempty"`
	WaitText   *string `json:"waitText,omitempty"`
	Text       *string `json:"text,omitempty"`
	Screenshot *string `json:"screenshot,omitempty"`
}

// Goto loads url and waits for its load event.
func Goto(url string) Step { return Step{Goto: &url} }

// Fill types value into the field selector matches.
func Fill(selector, value string) Step { return Step{Fill: &selector, Value: value} }

// Click clicks the element selector matches.
func Click(selector string) Step { return Step{Click: &selector} }

// WaitFor waits until the element selector matches is visible; after a Click
// that leaves the page, wait for something only the next page has.
func WaitFor(selector string) Step { return Step{Wait: &selector} }

// WaitText waits until text is visible anywhere on the page.
func WaitText(text string) Step { return Step{WaitText: &text} }

// ReadText appends the innerText of the element selector matches to
// BrowserResult.Texts.
func ReadText(selector string) Step { return Step{Text: &selector} }

// Screenshot saves a full-page PNG name(.png) in Driver.Artifacts.
func Screenshot(name string) Step { return Step{Screenshot: &name} }

// BrowserResult is what a Run saw: the page's URL after the last step, the
// texts ReadText steps read (in order) and the screenshots' paths.
type BrowserResult struct {
	URL         string   `json:"url"`
	Texts       []string `json:"texts"`
	Screenshots []string `json:"screenshots"`
	Error       string   `json:"error,omitempty"`
	Step        int      `json:"step,omitempty"`
}

// Run performs steps in a fresh browser with testdata/browser/drive.mjs.
// A failed step is an error naming it; the result then holds what was read
// until then and a failure-step-N.png screenshot.
func (d *Driver) Run(steps ...Step) (*BrowserResult, error) {
	d.t.Helper()
	stepTimeout := d.StepTimeout
	if stepTimeout <= 0 {
		stepTimeout = 15 * time.Second
	}
	input := map[string]any{"steps": steps, "timeoutMs": stepTimeout.Milliseconds()}
	out, err := d.RunScript(filepath.Join(d.root, "testdata", "browser", "drive.mjs"), input)
	var res BrowserResult
	if jerr := json.Unmarshal(lastLine(out), &res); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("drive.mjs printed no result: %v\n%s", jerr, out)
	}
	if res.Error != "" {
		s, _ := json.Marshal(steps[min(max(res.Step, 0), len(steps)-1)])
		return &res, fmt.Errorf("browser step %d %s failed at %s: %s (screenshots: %v)", res.Step, s, res.URL, res.Error, res.Screenshots)
	}
	if err != nil {
		return &res, err
	}
	return &res, nil
}

// RunScript runs a playwright driver the test wrote, node SCRIPT INPUT.json,
// and returns its stdout. The script gets the environment launch.mjs reads;
// it starts the browser with
//
//	const { launchContext, artifact } = await import(process.env.LTIGRADE_BROWSER_LAUNCH);
//
// (or require('playwright-core') itself, which NODE_PATH finds, passing
// JSON.parse(process.env.LTIGRADE_BROWSER_ARGS) and executablePath CHROMIUM).
func (d *Driver) RunScript(script string, input any) ([]byte, error) {
	d.t.Helper()
	// The script runs in a temp dir; a path relative to the test's
	// package folder must still find it.
	script, err := filepath.Abs(script)
	if err != nil {
		return nil, err
	}
	tmp := d.t.TempDir()
	in, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	inFile := filepath.Join(tmp, "input.json")
	if err := os.WriteFile(inFile, in, 0o600); err != nil {
		return nil, err
	}
	profile := filepath.Join(tmp, "profile")
	if err := os.Mkdir(profile, 0o700); err != nil {
		return nil, err
	}
	args, _ := json.Marshal(BrowserArgs)
	nojs := "0"
	if d.DisableJavaScript {
		nojs = "1"
	}
	launch := (&url.URL{Scheme: "file", Path: filepath.Join(d.root, "testdata", "browser", "launch.mjs")}).String()

	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(d.t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Node, script, inFile)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(),
		"PLAYWRIGHT_CORE="+d.PlaywrightCore,
		"NODE_PATH="+filepath.Dir(d.PlaywrightCore),
		"CHROMIUM="+d.Chromium,
		"LTIGRADE_BROWSER_ARGS="+string(args),
		"LTIGRADE_BROWSER_PROFILE="+profile,
		"LTIGRADE_BROWSER_NOJS="+nojs,
		"LTIGRADE_BROWSER_LAUNCH="+launch,
		"LTIGRADE_ARTIFACTS="+d.Artifacts,
		// Chromium's scratch files (and a crashed one's) stay in the test's
		// temp dir, removed with it.
		"TMPDIR="+tmp,
		// Playwright's errors without terminal colour codes.
		"FORCE_COLOR=0",
	)
	// SIGTERM first: playwright then closes the browser it started, which
	// a SIGKILL of node would leave running.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() == context.DeadlineExceeded {
		return out, fmt.Errorf("node %s: still running after %v, stopped\n%s", filepath.Base(script), timeout, stderr.String())
	}
	if err != nil {
		return out, fmt.Errorf("node %s: %v\n%s", filepath.Base(script), err, stderr.String())
	}
	return out, nil
}

// lastLine is the last non-empty line of b (a driver's result, after
// whatever else a script printed).
func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}
