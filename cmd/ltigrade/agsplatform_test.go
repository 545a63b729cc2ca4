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

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdAGSPlatform drives the independent LTI 1.3 platform double
// (testdata/agsdouble/platform.py), which verifies our client assertions
// with PyJWT against the JWKS `ltigrade keys jwks` printed:
//
//	agsplatform start JWKS CLIENT_ID [FLAG...]  start it (FLAGs go to platform.py,
//	                                   e.g. --platform edx); sets $AGS_URL
//	agsplatform score ITEM USER        print scoreGiven/scoreMaximum stored (fails if none)
//	agsplatform stat NAME              print a counter (token_requests, ordering_refusals, ...)
//	agsplatform fault JSON             queue faults (see platform.py)
//	agsplatform expire                 revoke issued tokens (next use gets 401)
//	agsplatform rotate                 the platform rotates its key (401; edx: 403)
//	agsplatform post PATH JSON         POST JSON to one of the double's control paths
func cmdAGSPlatform(ts *testscript.TestScript, neg bool, args []string) {
	base := ts.Getenv("AGS_URL")
	get := func() map[string]any {
		resp, err := http.Get(base + "/grades.json")
		ts.Check(err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		ts.Check(json.Unmarshal(b, &v))
		return v
	}
	switch args[0] {
	case "start":
		py, err := python()
		if err != nil {
			ts.Fatalf("python for the platform double: %v", err)
		}
		portFile := filepath.Join(ts.Getenv("WORK"), ".ags.port")
		script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "agsdouble", "platform.py"))
		cmd := exec.Command(py, append([]string{script, "--port-file", portFile, "--jwks", ts.MkAbs(args[1]), "--client-id", args[2]}, args[3:]...)...)
		cmd.Stderr = os.Stderr
		ts.Check(cmd.Start())
		ts.Defer(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			b, err := os.ReadFile(portFile)
			if err == nil && len(strings.TrimSpace(string(b))) > 0 {
				ts.Setenv("AGS_URL", "http://127.0.0.1:"+strings.TrimSpace(string(b)))
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("the platform double did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	case "score":
		scores, _ := get()["scores"].([]any)
		for _, s := range scores {
			m, _ := s.(map[string]any)
			if fmt.Sprint(m["lineitem"]) == args[1] && m["userId"] == args[2] {
				if neg {
					ts.Fatalf("the platform holds a score for %s", args[2])
				}
				fmt.Fprintf(ts.Stdout(), "%v/%v %v\n", m["scoreGiven"], m["scoreMaximum"], m["comment"])
				return
			}
		}
		if !neg {
			ts.Fatalf("the platform holds no score for %s on line item %s", args[2], args[1])
		}
	case "stat":
		stats, _ := get()["stats"].(map[string]any)
		fmt.Fprintf(ts.Stdout(), "%v\n", stats[args[1]])
	case "fault", "expire", "rotate", "post":
		path, body := "/faults", strings.Join(args[1:], " ")
		switch args[0] {
		case "expire":
			path, body = "/expire-tokens", "{}"
		case "rotate":
			path, body = "/rotate-key", "{}"
		case "post":
			path, body = args[1], strings.Join(args[2:], " ")
		}
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		ts.Check(err)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			ts.Fatalf("agsplatform %s: HTTP %d", args[0], resp.StatusCode)
		}
	default:
		ts.Fatalf("unknown agsplatform command %q", args[0])
	}
}
