package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/lmssim"
)

func newDemoCmd(app *App) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole loop against a built-in LMS simulator (start here)",
		Long: `In a temporary directory, start an LMS simulator on loopback, record two launches of
one course repository (two assignments), resolve a student's notebook back to its
launch, send its score, and show the grade the simulator received. Nothing outside
the temporary directory is touched.`,
		Example: "  ltigrade demo\n  ltigrade demo --keep   # keep the directory to poke at it with --config",
		Args:    args(cobra.NoArgs),
		RunE:    func(cmd *cobra.Command, _ []string) error { return runDemo(app, keep) },
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (config, database) afterwards")
	return cmd
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func runDemo(app *App, keep bool) error {
	dir, err := os.MkdirTemp("", "ltigrade-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	key, secret := "demo-course", randomHex(16)
	sim := lmssim.New(map[string]string{key: secret})
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start the LMS simulator: %w", err)
	}
	defer sim.Close()

	home := filepath.Join(dir, "home")
	cfgPath := filepath.Join(dir, "config.toml")
	cfg := fmt.Sprintf("database = %q\n\n[paths]\nhome = %q\n\n[[lti11.consumers]]\nkey = %q\nsecret_file = %q\n",
		filepath.Join(dir, "ltigrade.db"), filepath.Join(home, "jupyter-{username}"), key, filepath.Join(dir, "demo.secret"))
	if err := os.WriteFile(filepath.Join(dir, "demo.secret"), []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}

	w := app.Out
	step := func(n int, what string) { fmt.Fprintf(w, "\n%d. %s\n", n, what) }
	// run executes one of our own commands against the demo config, so the
	// demo shows exactly what the real commands do.
	run := func(stdin string, a ...string) int {
		fmt.Fprintf(w, "   $ ltigrade %s\n", strings.Join(a, " "))
		var out bytes.Buffer
		sub := &App{In: strings.NewReader(stdin), Out: &out, Err: &out, Getenv: func(string) string { return "" },
			Now: app.Now, ctx: app.Context(), OutIsTTY: app.OutIsTTY}
		code := Run(sub, append([]string{"--config", cfgPath}, a...))
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			fmt.Fprintf(w, "   %s\n", line)
		}
		return code
	}

	fmt.Fprintf(w, "ltigrade demo: an LMS simulator is listening on %s (consumer key %q)\n", base, key)
	fmt.Fprintf(w, "working directory %s\n", dir)

	// The launches are built by the sandbox's launch builder, so the demo
	// records exactly what `ltigrade sandbox` would send through a hub: the
	// auth_state ltiauthenticator hands the hook, next= link included.
	lb := &lmssim.LaunchBuilder{
		OutcomeURL: base + "/outcomes",
		Key:        key,
		Course: lmssim.Course{
			ID: "course-1", Label: "DS100", Title: "Data Science 100",
			Repo: "https://github.com/example/ds100-materials", Branch: "main",
			Students: []lmssim.Student{{Name: "alice", UserID: "lms-user-17", FullName: "Alice"}},
			Assignments: []lmssim.Assignment{
				{ID: "hw1", LinkID: "link-hw1", Title: "Homework 1", Path: "hw1/hw1.ipynb"},
				{ID: "hw2", LinkID: "link-hw2", Title: "Homework 2", Path: "hw2/hw2.ipynb"},
			},
		},
	}
	step(1, "Two LTI 1.1 launches arrive from the LMS, one per assignment of the same course repo")
	for i, hw := range []string{"hw1", "hw2"} {
		as, err := lb.AuthState("alice", hw)
		if err != nil {
			return fmt.Errorf("demo: build the launch: %w", err)
		}
		l := map[string]any{
			"username":     as[lmssim.UsernameKey], // ltiauthenticator's default username_key
			"consumer_key": key,
			"next_url":     as["next"],
			"launched_at":  app.Now().Add(time.Duration(i-2) * time.Minute).UTC().Format(time.RFC3339),
			"auth_state":   as,
		}
		js, _ := json.Marshal(l)
		if code := run(string(js), "record", "-"); code != 0 {
			return fmt.Errorf("demo: record failed with exit code %d", code)
		}
	}

	step(2, "The hub now knows alice's sessions")
	run("", "sessions", "list")

	nb := filepath.Join(home, "jupyter-alice", "ds100-materials", "hw1", "hw1.ipynb")
	step(3, "A grader scored alice's hw1 notebook; which LMS assignment is it?")
	if code := run("", "resolve", nb); code != 0 {
		return fmt.Errorf("demo: resolve failed with exit code %d", code)
	}

	step(4, "Send the score: journaled first, then signed (OAuth 1.0a) and sent")
	if code := run("", "score", nb, "0.85"); code != 0 {
		return fmt.Errorf("demo: score failed with exit code %d", code)
	}

	step(5, "What the LMS simulator received")
	sid1, _ := lb.SourcedID("alice", "hw1")
	sid2, _ := lb.SourcedID("alice", "hw2")
	g, ok := sim.Grade(sid1)
	if !ok {
		return fmt.Errorf("demo: the simulator has no grade for alice's hw1")
	}
	fmt.Fprintf(w, "   gradebook: sourcedid %s -> score %s (signature and body hash verified)\n", g.SourcedID, g.Score)
	if _, ok := sim.Grade(sid2); !ok {
		fmt.Fprintf(w, "   hw2 has no grade yet, as expected\n")
	}
	fmt.Fprintf(w, "\nNext: read docs/configuration.md, then `ltigrade help exit-codes`.\n")
	if keep {
		fmt.Fprintf(w, "Kept %s; try: ltigrade --config %s passbacks list\n", dir, cfgPath)
	}
	return nil
}
