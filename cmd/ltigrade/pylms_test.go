package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// python is the interpreter of the doubles' venv (see internal/testenv).
func python() (string, error) { return testenv.Python() }

// cmdPyLMS drives the independent Python LMS double (testdata/lmsdouble/lms.py),
// which verifies signatures and body hashes with oauthlib:
//
//	pylms start              start it; sets $PYLMS_URL
//	pylms grade SOURCEDID    print the score it stored (fails if none)
//	pylms fault JSON         queue faults (see lms.py)
func cmdPyLMS(ts *testscript.TestScript, neg bool, args []string) {
	switch args[0] {
	case "start":
		py, err := python()
		if err != nil {
			ts.Fatalf("python for the LMS double: %v", err)
		}
		portFile := filepath.Join(ts.Getenv("WORK"), ".pylms.port")
		script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "lmsdouble", "lms.py"))
		cmd := exec.Command(py, script, "--port-file", portFile, "--consumer", simKey+":"+simSecret)
		cmd.Stderr = os.Stderr
		ts.Check(cmd.Start())
		ts.Defer(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			b, err := os.ReadFile(portFile)
			if err == nil && len(strings.TrimSpace(string(b))) > 0 {
				ts.Setenv("PYLMS_URL", "http://127.0.0.1:"+strings.TrimSpace(string(b)))
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("the Python LMS double did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	case "grade":
		resp, err := http.Get(ts.Getenv("PYLMS_URL") + "/grades.json")
		ts.Check(err)
		defer resp.Body.Close()
		var grades []struct {
			SourcedID string `json:"sourced_id"`
			Score     string `json:"score"`
		}
		body, _ := io.ReadAll(resp.Body)
		ts.Check(json.Unmarshal(body, &grades))
		for _, g := range grades {
			if g.SourcedID == args[1] {
				if neg {
					ts.Fatalf("the Python LMS holds %s for %s", g.Score, args[1])
				}
				fmt.Fprintln(ts.Stdout(), g.Score)
				return
			}
		}
		if !neg {
			ts.Fatalf("the Python LMS holds no grade for %s", args[1])
		}
	case "fault":
		resp, err := http.Post(ts.Getenv("PYLMS_URL")+"/faults", "application/json", strings.NewReader(strings.Join(args[1:], " ")))
		ts.Check(err)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			ts.Fatalf("pylms fault: HTTP %d", resp.StatusCode)
		}
	default:
		ts.Fatalf("unknown pylms command %q", args[0])
	}
}
