package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ltigrade/ltigrade/internal/sandbox"
)

// cmdFakeHub starts a stand-in for JupyterHub's API that knows three
// tokens, and sets HUB_API_URL, GRADER_TOKEN, STUDENT_TOKEN and
// NOSCOPE_TOKEN; the real hub is in internal/e2e.
func cmdFakeHub(ts *testscript.TestScript, neg bool, args []string) {
	access := "access:services!service=ltigrade"
	users := map[string]map[string]any{
		"grader-" + simSecret[:4] + "-tok":  {"name": "ta1", "kind": "user", "groups": []string{"instructors"}, "scopes": []string{access}},
		"student-" + simSecret[:4] + "-tok": {"name": "alice", "kind": "user", "groups": []string{}, "scopes": []string{access}},
		"noscope-tok":                       {"name": "bob", "kind": "user", "scopes": []string{}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := users[strings.TrimPrefix(r.Header.Get("Authorization"), "token ")]
		if r.URL.Path != "/hub/api/user" || !ok {
			http.Error(w, `{"status":403}`, http.StatusForbidden)
			return
		}
		json.NewEncoder(w).Encode(u)
	}))
	ts.Defer(srv.Close)
	ts.Setenv("HUB_API_URL", srv.URL+"/hub/api")
	ts.Setenv("GRADER_TOKEN", "grader-"+simSecret[:4]+"-tok")
	ts.Setenv("STUDENT_TOKEN", "student-"+simSecret[:4]+"-tok")
	ts.Setenv("NOSCOPE_TOKEN", "noscope-tok")
}

// cmdFreePort sets NAME to a free loopback port.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.Fatalf("%v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ts.Setenv(args[0], fmt.Sprint(port))
}

// cmdWaitHTTP waits until URL answers at all (any status).
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(args[0])
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s does not answer: %v", args[0], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdHTTPGet is httpget URL [AUTHORIZATION]: GET URL (with that
// Authorization header), print "status N" and the body; fails on no answer.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: httpget URL [AUTHORIZATION]")
	}
	req, err := http.NewRequest("GET", args[0], nil)
	ts.Check(err)
	if len(args) == 2 {
		req.Header.Set("Authorization", args[1])
	}
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "status %d\n%s", resp.StatusCode, body)
}

// sandboxCondition is the script condition [sandbox]: this machine can
// build grading sandboxes (root, namespaces). Under
// LTIGRADE_SANDBOX_TESTS=require (CI as root) a machine that cannot is an
// error, not a skip.
func sandboxCondition() (bool, error) {
	why := ""
	if os.Geteuid() != 0 {
		why = "the grading sandbox needs root"
	} else if err := sandbox.Available(); err != nil {
		why = "the grading sandbox is unavailable: " + err.Error()
	}
	if why != "" && os.Getenv("LTIGRADE_SANDBOX_TESTS") == "require" {
		return false, fmt.Errorf("%s (LTIGRADE_SANDBOX_TESTS=require)", why)
	}
	return why == "", nil
}

// cmdSandboxUser creates a throwaway system user for the grading sandbox
// (removed when the script ends) and sets SANDBOX_USER.
func cmdSandboxUser(ts *testscript.TestScript, neg bool, args []string) {
	b := make([]byte, 4)
	rand.Read(b)
	name := "ltgts" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		ts.Fatalf("useradd: %v %s", err, out)
	}
	ts.Defer(func() { exec.Command("userdel", name).Run() })
	ts.Setenv("SANDBOX_USER", name)
}
