package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
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

	repo := "https://github.com/example/ds100-materials"
	step(1, "Two LTI 1.1 launches arrive from the LMS, one per assignment of the same course repo")
	for i, hw := range []string{"hw1", "hw2"} {
		next := "/hub/user-redirect/git-pull?" + url.Values{
			"repo": {repo}, "branch": {"main"}, "urlpath": {fmt.Sprintf("tree/ds100-materials/%s/%s.ipynb", hw, hw)},
		}.Encode()
		l := map[string]any{
			"username":     "alice",
			"consumer_key": key,
			"next_url":     next,
			"launched_at":  app.Now().Add(time.Duration(i-2) * time.Minute).UTC().Format(time.RFC3339),
			"auth_state": map[string]any{
				"lti_message_type": "basic-lti-launch-request", "lti_version": "LTI-1p0",
				"user_id": "lms-user-17", "roles": "Learner",
				"resource_link_id": "link-" + hw, "resource_link_title": "Homework " + hw[2:],
				"context_id": "course-1", "context_label": "DS100", "context_title": "Data Science 100",
				"lis_outcome_service_url": base + "/outcomes",
				"lis_result_sourcedid":    "course-1:link-" + hw + ":lms-user-17",
			},
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
	g, ok := sim.Grade("course-1:link-hw1:lms-user-17")
	if !ok {
		return fmt.Errorf("demo: the simulator has no grade for alice's hw1")
	}
	fmt.Fprintf(w, "   gradebook: sourcedid %s -> score %s (signature and body hash verified)\n", g.SourcedID, g.Score)
	if _, ok := sim.Grade("course-1:link-hw2:lms-user-17"); !ok {
		fmt.Fprintf(w, "   hw2 has no grade yet, as expected\n")
	}
	fmt.Fprintf(w, "\nNext: read docs/configuration.md, then `ltigrade help exit-codes`.\n")
	if keep {
		fmt.Fprintf(w, "Kept %s; try: ltigrade --config %s passbacks list\n", dir, cfgPath)
	}
	return nil
}
