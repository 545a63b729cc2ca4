package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/lmssim"
)

func newDemoCmd(app *App) *cobra.Command {
	var keep, lti13 bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole loop against a built-in LMS simulator (start here)",
		Long: `In a temporary directory, start an LMS simulator on loopback, record two launches of
one course repository (two assignments), resolve a student's notebook back to its
launch, send its score, and show the grade the simulator received. Nothing outside
the temporary directory is touched.

With --lti13 the same walk-through runs over LTI 1.3: a tool key is generated, the
launches carry the id_token claims with an Assignment and Grade Services endpoint on a
built-in LTI 1.3 platform, and the score goes out with an access token obtained by a
signed client assertion.`,
		Example: "  ltigrade demo\n  ltigrade demo --lti13\n  ltigrade demo --keep   # keep the directory to poke at it with --config",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lti13 {
				return runDemoLTI13(app, keep)
			}
			return runDemo(app, keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (config, database) afterwards")
	cmd.Flags().BoolVar(&lti13, "lti13", false, "use LTI 1.3 (id_token launches, AGS score passback) instead of LTI 1.1")
	return cmd
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// demoRunner returns a function that executes one of our own commands
// against the demo config and prints it with its output, so the demo shows
// exactly what the real commands do.
func demoRunner(app *App, cfgPath string) func(stdin string, a ...string) int {
	w := app.Out
	return func(stdin string, a ...string) int {
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
}

// demoCourse is the course both demos launch into.
func demoCourse() lmssim.Course {
	return lmssim.Course{
		ID: "course-1", Label: "DS100", Title: "Data Science 100",
		Repo: "https://github.com/example/ds100-materials", Branch: "main",
		Students: []lmssim.Student{{Name: "alice", UserID: "lms-user-17", FullName: "Alice"}},
		Assignments: []lmssim.Assignment{
			{ID: "hw1", LinkID: "link-hw1", Title: "Homework 1", Path: "hw1/hw1.ipynb"},
			{ID: "hw2", LinkID: "link-hw2", Title: "Homework 2", Path: "hw2/hw2.ipynb"},
		},
	}
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
	run := demoRunner(app, cfgPath)

	fmt.Fprintf(w, "ltigrade demo: an LMS simulator is listening on %s (consumer key %q)\n", base, key)
	fmt.Fprintf(w, "working directory %s\n", dir)

	// The launches are built by the sandbox's launch builder, so the demo
	// records exactly what `ltigrade sandbox` would send through a hub: the
	// auth_state ltiauthenticator hands the hook, next= link included.
	lb := &lmssim.LaunchBuilder{
		OutcomeURL: base + "/outcomes",
		Key:        key,
		Course:     demoCourse(),
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

// The LTI 1.3 demo's platform registration, and the hub its target links
// name (no hub runs: the demo records what the hub's hook would see).
const (
	demoIssuer   = "https://lms.example.edu"
	demoClientID = "demo-client"
	demoHub      = "https://hub.example.org"
)

// runDemoLTI13 is runDemo over LTI 1.3: a tool key, an in-process AGS
// platform that trusts it, id_token launches, and a score sent with a
// token obtained by a signed client assertion.
func runDemoLTI13(app *App, keep bool) error {
	dir, err := os.MkdirTemp("", "ltigrade-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	home := filepath.Join(dir, "home")
	cfgPath := filepath.Join(dir, "config.toml")
	keyFile := filepath.Join(dir, "lti13.pem")
	baseCfg := fmt.Sprintf("database = %q\n\n[paths]\nhome = %q\n",
		filepath.Join(dir, "ltigrade.db"), filepath.Join(home, "jupyter-{username}"))
	if err := os.WriteFile(cfgPath, []byte(baseCfg), 0o600); err != nil {
		return err
	}
	w := app.Out
	step := func(n int, what string) { fmt.Fprintf(w, "\n%d. %s\n", n, what) }
	run := demoRunner(app, cfgPath)

	fmt.Fprintf(w, "ltigrade demo --lti13: working directory %s\n", dir)
	step(1, "Generate the tool's key; its public JWKS (`ltigrade keys jwks`) is what the LMS registers")
	if code := run("", "keys", "generate", "--out", keyFile); code != 0 {
		return fmt.Errorf("demo: keys generate failed with exit code %d", code)
	}
	key, err := keys.LoadFile(keyFile)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	plat := lmssim.NewPlatform(demoClientID, key.Public(), key.KeyID())
	base, err := plat.Start("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start the LTI 1.3 platform: %w", err)
	}
	defer plat.Close()
	cfg := baseCfg + fmt.Sprintf("\n[[lti13.platforms]]\nissuer = %q\nclient_id = %q\ntoken_url = %q\nprivate_key_file = %q\n",
		demoIssuer, demoClientID, base+"/token", keyFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "   an LTI 1.3 platform is listening on %s (issuer %s, client_id %q);\n", base, demoIssuer, demoClientID)
	fmt.Fprintf(w, "   it trusts key id %s, and the config has its [[lti13.platforms]] entry\n", key.KeyID())

	// The platform builds and signs the launches from the same course as
	// the LTI 1.1 demo: hw1's names its line item, hw2's only the
	// container, so ltigrade looks the line item of the resource link up
	// when it sends.
	course := demoCourse()
	course.Assignments[1].NoLineItemClaim = true
	plat.SetIssuer(demoIssuer)
	plat.SetTool(lmssim.HubTool(demoHub))
	if err := plat.SetCourse(lmssim.LaunchBuilder{HubURL: demoHub, Course: course}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	jwks, err := demoJWKS(plat.JWKSURL())
	if err != nil {
		return fmt.Errorf("demo: the platform's key set: %w", err)
	}
	step(2, "Two LTI 1.3 launches arrive from the LMS (the id_token claims ltiauthenticator keeps as auth_state)")
	for i, hw := range []string{"hw1", "hw2"} {
		tok, err := plat.IDToken("alice", hw, randomHex(16))
		if err != nil {
			return fmt.Errorf("demo: build the launch: %w", err)
		}
		// What LTI13Authenticator does before it logs the student in:
		// check the signature against the platform's JWKS.
		claims, err := lmssim.VerifyJWT(tok, jwks)
		if err != nil {
			return fmt.Errorf("demo: the platform's id_token: %w", err)
		}
		fmt.Fprintf(w, "   the platform signed an id_token for alice/%s (RS256, key id %s, verified against its JWKS at %s)\n",
			hw, jwks.Keys[0].Kid, plat.JWKSURL())
		if ep, _ := claims[lmssim.ClaimAGS].(map[string]any); ep["lineitem"] == nil {
			fmt.Fprintf(w, "   alice/%s: its grade-service claim names only the line item container\n", hw)
		}
		l := map[string]any{
			// ltiauthenticator with username_key = "custom_username"
			"username":    "alice",
			"launched_at": app.Now().Add(time.Duration(i-2) * time.Minute).UTC().Format(time.RFC3339),
			"auth_state":  claims,
		}
		js, _ := json.Marshal(l)
		if code := run(string(js), "record", "-"); code != 0 {
			return fmt.Errorf("demo: record failed with exit code %d", code)
		}
	}

	step(3, "The hub now knows alice's sessions (LTI version 1.3)")
	run("", "sessions", "list")

	nb := filepath.Join(home, "jupyter-alice", "ds100-materials", "hw1", "hw1.ipynb")
	step(4, "A grader scored alice's hw1 notebook; which LMS assignment is it?")
	if code := run("", "resolve", nb); code != 0 {
		return fmt.Errorf("demo: resolve failed with exit code %d", code)
	}

	step(5, "Send the score: journaled first, then a token (RS256 client assertion) and POST {lineitem}/scores")
	if code := run("", "score", nb, "17", "--out-of", "20"); code != 0 {
		return fmt.Errorf("demo: score failed with exit code %d", code)
	}

	step(6, "What the LTI 1.3 platform stored")
	s, ok := plat.Score("hw1", "lms-user-17")
	if !ok {
		return fmt.Errorf("demo: the platform has no score for alice's hw1")
	}
	st := plat.Stats()
	fmt.Fprintf(w, "   line item hw1 (link-hw1): userId %s -> scoreGiven %s, scoreMaximum %s (%s, %s)\n",
		s.UserID, fmtFloat(s.ScoreGiven), fmtFloat(s.ScoreMaximum), s.ActivityProgress, s.GradingProgress)
	fmt.Fprintf(w, "   token requests: %d, client assertion verified against key id %s (%d refused)\n",
		st.TokenRequests, key.KeyID(), st.AssertionFailures)
	if _, ok := plat.Score("hw2", "lms-user-17"); !ok {
		fmt.Fprintf(w, "   hw2 has no score yet, as expected\n")
	}
	step(7, "Read it back: GET {lineitem}/results?user_id=")
	run("", "result", "read", nb)

	fmt.Fprintf(w, "\nNext: read docs/lti13.md to register ltigrade with Canvas, Moodle or Brightspace.\n")
	if keep {
		fmt.Fprintf(w, "Kept %s; try: ltigrade --config %s passbacks list\n", dir, cfgPath)
	}
	return nil
}

// demoJWKS fetches a key set, as the hub fetches its jwks_endpoint.
func demoJWKS(u string) (keys.JWKSet, error) {
	var set keys.JWKSet
	resp, err := http.Get(u)
	if err != nil {
		return set, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return set, fmt.Errorf("GET %s: %v", u, err)
	}
	if len(set.Keys) == 0 {
		return set, fmt.Errorf("GET %s: no keys", u)
	}
	return set, nil
}
