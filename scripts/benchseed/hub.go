package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// cmdServeHub answers GET /hub/api/user for one token, as JupyterHub would
// for a grader, until SIGTERM or SIGINT. The benchmark measures the grading
// service, not the hub, whose answer the service caches.
func cmdServeHub(args []string) error {
	fs := flag.NewFlagSet("serve-hub", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	token := fs.String("token", "", "the one token it accepts")
	user := fs.String("user", "grader", "whose token it is")
	group := fs.String("group", "instructors", "the user's hub group")
	urlFile := fs.String("url-file", "", "write the hub API URL here once listening")
	// The submit benchmark's students: each has a token of its own, PREFIX
	// followed by the student's name, and no group (a student, not a
	// grader).
	studentPrefix := fs.String("student-token-prefix", "", "also accept PREFIX+NAME as student NAME's token")
	fs.Parse(args)
	if *token == "" {
		return errors.New("-token is required")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if student, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token "+*studentPrefix); ok && *studentPrefix != "" &&
			r.URL.Path == "/hub/api/user" && student != "" {
			json.NewEncoder(w).Encode(map[string]any{"name": student, "kind": "user", "groups": []string{},
				"scopes": []string{"access:services!service=ltigrade"}})
			return
		}
		if r.URL.Path != "/hub/api/user" || r.Header.Get("Authorization") != "token "+*token {
			http.Error(w, `{"status":403}`, http.StatusForbidden)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"name": *user, "kind": "user", "groups": []string{*group},
			"scopes": []string{"access:services!service=ltigrade"}})
	})}
	go srv.Serve(ln)
	api := "http://" + ln.Addr().String() + "/hub/api"
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile+".tmp", []byte(api+"\n"), 0o600); err != nil {
			return err
		}
		if err := os.Rename(*urlFile+".tmp", *urlFile); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "benchseed: hub API stand-in at %s\n", api)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	return srv.Close()
}
