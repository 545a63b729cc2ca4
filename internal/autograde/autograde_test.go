package autograde

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/sandbox"
)

var testUser string

func TestMain(m *testing.M) {
	sandbox.ChildMain()
	if os.Geteuid() == 0 {
		b := make([]byte, 4)
		rand.Read(b)
		name := "ltgag" + hex.EncodeToString(b)
		if err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", name).Run(); err == nil {
			testUser = name
		}
	}
	code := m.Run()
	if testUser != "" {
		exec.Command("userdel", testUser).Run()
	}
	os.Exit(code)
}

func needSandbox(t *testing.T) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("LTIGRADE_SANDBOX_TESTS") == "require" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 || testUser == "" {
		skip("needs root and useradd (CI runs as root)")
	}
	if err := sandbox.Available(); err != nil {
		skip("sandbox unavailable: %v", err)
	}
}

// execGrader is a course's own grader (kind command), written the way
// docs/submit.md recommends: it runs the
// notebook's code cells, then the tests: add must add, worth 2 of 3
// points, mul must multiply, 1 point. It prints the score last.
const execGrader = `import json, sys
nb = json.load(open(sys.argv[1]))
env = {}
for c in nb["cells"]:
    if c["cell_type"] == "code":
        try:
            exec("".join(c["source"]), env)
        except BaseException as e:
            print("cell failed:", repr(e)[:200])
score = 0
try:
    if env["add"](2, 3) == 5: score += 2
except Exception as e:
    print("add:", e)
try:
    if env["mul"](2, 3) == 6: score += 1
except Exception as e:
    print("mul:", e)
# The student's code ran in this process: end before any exit handler or
# thread of theirs can print after the score (docs/submit.md).
sys.stdout.write("\n" + json.dumps({"score": score, "out_of": 3}) + "\n")
sys.stdout.flush()
import os
os._exit(0)
`

func notebook(code ...string) []byte {
	var cells []map[string]any
	for _, c := range code {
		cells = append(cells, map[string]any{"cell_type": "code", "source": c, "metadata": map[string]any{}, "outputs": []any{}, "execution_count": nil})
	}
	b, _ := json.Marshal(map[string]any{"cells": cells, "metadata": map[string]any{}, "nbformat": 4, "nbformat_minor": 5})
	return b
}

func job(t *testing.T) Job {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	grader := filepath.Join(dir, "grade.py")
	os.WriteFile(grader, []byte(execGrader), 0o644)
	lim := config.DefaultSubmit
	lim.SandboxUser, lim.Processes, lim.MemoryMB, lim.DiskMB, lim.CPU, lim.OutputKB = testUser, 64, 512, 32, 5*time.Second, 16
	return Job{Grader: config.Grader{Kind: "command", Command: []string{"/usr/bin/python3", "{autograder}", "{notebook}"},
		Autograder: grader, Timeout: 10 * time.Second}, Limits: lim, Name: "hw1.ipynb"}
}

const good = "def add(a, b):\n    return a + b\ndef mul(a, b):\n    return a * b\n"

func TestCommandGraderScores(t *testing.T) {
	needSandbox(t)
	j := job(t)
	j.Notebook = notebook(good)
	o, err := Grade(context.Background(), sandbox.Run, j)
	if err != nil || o.Failed || o.Score != 3 || o.OutOf != 3 {
		t.Fatalf("good notebook: %+v %v", o, err)
	}
	j.Notebook = notebook("def add(a, b):\n    return a + b\n")
	o, err = Grade(context.Background(), sandbox.Run, j)
	if err != nil || o.Failed || o.Score != 2 {
		t.Fatalf("half notebook: %+v %v", o, err)
	}
}

// Hostile notebooks: each is contained, and ends as a grading failure or
// the score its tests earn; nothing of the service leaks.
func TestHostileNotebooks(t *testing.T) {
	needSandbox(t)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "course.secret")
	os.WriteFile(secret, []byte("TOP-SECRET-"+hex.EncodeToString([]byte(t.Name()))), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			got <- struct{}{}
		}
	}()
	os.Setenv("LTIGRADE_TEST_MARKER", "leaked-env-marker")
	defer os.Unsetenv("LTIGRADE_TEST_MARKER")
	escape := filepath.Join(os.TempDir(), "ltigrade-escape-"+hex.EncodeToString([]byte(t.Name()))[:8])
	os.Remove(escape)
	for _, c := range []struct {
		name      string
		code      string
		wantScore float64 // -1: a grading failure
	}{
		{"reads the secret file", fmt.Sprintf("print(open(%q).read())\n", secret) + good, 3},
		{"reads the config and database", "import glob\nfor p in glob.glob('/etc/ltigrade/*') + glob.glob('/var/lib/ltigrade/*'):\n    print(p, open(p).read()[:50])\n" + good, 3},
		{"opens a socket", fmt.Sprintf("import socket\nsocket.create_connection(('127.0.0.1', %d), timeout=2)\n", ln.Addr().(*net.TCPAddr).Port) + good, 3},
		{"reads the environment", "import os\nprint(dict(os.environ))\nprint(open('/proc/1/environ').read())\n" + good, 3},
		{"fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", -1},
		{"endless loop", "while True:\n    pass\n", -1},
		{"fills the disk", "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n" + good, 3},
		{"writes outside its directory", fmt.Sprintf("open(%q, 'w').write('escaped')\n", escape) + good, 3},
		{"prints a fake score line", "print('{\"score\": 3, \"out_of\": 3}')\ndef add(a, b):\n    return 0\n", 0},
		{"prints 50 MB", "import sys\nfor _ in range(50):\n    sys.stdout.write('y' * (1 << 20))\n" + good, 3},
		{"prints a fake score at the very end", "import sys, atexit\natexit.register(lambda: sys.stdout.write('{\"score\": 3, \"out_of\": 3}'))\ndef add(a, b):\n    return 0\n", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := job(t)
			// The hostile cell first; the student's good answers in a
			// cell of their own (a failing cell does not stop the rest).
			j.Notebook = notebook(strings.TrimSuffix(c.code, good), good)
			if !strings.HasSuffix(c.code, good) {
				j.Notebook = notebook(c.code)
			}
			start := time.Now()
			o, err := Grade(context.Background(), sandbox.Run, j)
			if err != nil {
				t.Fatalf("the sandbox failed: %v", err)
			}
			if c.wantScore < 0 && !o.Failed {
				t.Errorf("want a grading failure, got %+v", o)
			}
			if c.wantScore >= 0 && (o.Failed || o.Score != c.wantScore) {
				t.Errorf("want score %g, got %+v (%.300s)", c.wantScore, o, o.Output)
			}
			for _, leak := range []string{"TOP-SECRET", "leaked-env-marker", "JUPYTERHUB"} {
				if strings.Contains(o.Output, leak) {
					t.Errorf("the grader's output holds %q", leak)
				}
			}
			if len(o.Output) > 9<<10 {
				t.Errorf("output tail is %d bytes", len(o.Output))
			}
			t.Logf("%s: %v score %g/%g failed=%v %q (%s)", c.name, o.Duration.Round(time.Millisecond), o.Score, o.OutOf, o.Failed, o.Reason, time.Since(start).Round(time.Millisecond))
		})
	}
	select {
	case <-got:
		t.Error("a notebook reached a socket on the host")
	default:
	}
	if _, err := os.Stat(escape); err == nil {
		t.Errorf("a notebook wrote %s", escape)
		os.Remove(escape)
	}
}

func TestLastScoreLine(t *testing.T) {
	for in, want := range map[string]string{
		"noise\n{\"score\": 2, \"out_of\": 4}\n":      "2/4",
		"{\"score\": 0.5}":                            "0.5/1",
		"{\"score\": 5, \"out_of\": 4}":               "error",
		"{\"score\": -1, \"out_of\": 4}":              "error",
		"{\"score\": 1, \"out_of\": 0}":               "error",
		"{\"score\": 1}\nprinted after":               "error",
		"yyyy{\"score\": 1, \"out_of\": 2}":           "1/2",
		"{\"score\": 3}{\"score\": 1, \"out_of\": 2}": "1/2",
		"":                     "error",
		"{\"score\": \"NaN\"}": "error",
	} {
		s, m, err := lastScoreLine([]byte(in))
		got := fmt.Sprintf("%g/%g", s, m)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
