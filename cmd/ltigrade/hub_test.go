package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
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
