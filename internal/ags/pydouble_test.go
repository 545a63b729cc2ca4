package ags

// Tests against testdata/agsdouble/platform.py, which verifies our client
// assertions with PyJWT against the JWKS from internal/keys. Python comes
// from LTIGRADE_PYTHON or scripts/python-env.sh; LTIGRADE_SKIP_PYTHON=1
// skips, otherwise a missing Python fails.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/testenv"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// python returns the interpreter of the doubles' venv.
func python(t *testing.T) string {
	t.Helper()
	if os.Getenv("LTIGRADE_SKIP_PYTHON") == "1" {
		t.Skip("LTIGRADE_SKIP_PYTHON=1: skipping the independent PyJWT platform double")
	}
	py, err := testenv.Python()
	if err != nil {
		t.Fatalf("cannot get the python venv (set LTIGRADE_PYTHON, or LTIGRADE_SKIP_PYTHON=1 to skip): %v", err)
	}
	return py
}

type lockedBuffer = testenv.LockedBuffer

type agsDouble struct {
	base string
	p    Platform
}

func startDouble(t *testing.T, extra ...string) *agsDouble {
	t.Helper()
	py := python(t)
	dir := t.TempDir()
	k := keys.Wrap(key(t))
	jwks, err := keys.JWKS(k.Public(), "")
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksFile, jwks, 0o644)
	portFile := filepath.Join(dir, "port")
	args := append([]string{filepath.Join(repoRoot(t), "testdata", "agsdouble", "platform.py"),
		"--port-file", portFile, "--jwks", jwksFile, "--client-id", "tool-1"}, extra...)
	cmd := exec.Command(py, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var base string
	t.Cleanup(func() {
		if base != "" {
			if resp, err := (&http.Client{Timeout: 2 * time.Second}).Post(base+"/shutdown", "text/plain", nil); err == nil {
				resp.Body.Close()
			}
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("platform.py output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(portFile); err == nil && len(b) > 0 {
			base = "http://127.0.0.1:" + strings.TrimSpace(string(b))
			break
		}
		select {
		case <-exited:
			t.Fatalf("platform.py exited early:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("platform.py did not start:\n%s", out.String())
		}
	}
	return &agsDouble{base: base, p: Platform{Issuer: "https://moodle.test", ClientID: "tool-1",
		TokenURL: base + "/token", KeyID: k.KeyID(), Key: k.RSA()}}
}

func (d *agsDouble) post(t *testing.T, path, body string) {
	t.Helper()
	resp, err := http.Post(d.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

type grades struct {
	Scores []struct {
		LineItem            string  `json:"lineitem"`
		UserID              string  `json:"userId"`
		ScoreGiven          float64 `json:"scoreGiven"`
		Timestamp           string  `json:"timestamp"`
		Writes              int     `json:"writes"`
		CanvasNewSubmission *bool   `json:"canvas_new_submission"`
	} `json:"scores"`
	Stats map[string]int `json:"stats"`
}

func (d *agsDouble) grades(t *testing.T) grades {
	t.Helper()
	resp, err := http.Get(d.base + "/grades.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var g grades
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestPyDoubleEndToEnd(t *testing.T) {
	d := startDouble(t)
	ctx := context.Background()
	c := &Client{}
	li, err := c.FindLineItem(ctx, d.p, d.base+"/lineitems", "rl-5") // third page at 2 per page
	if err != nil {
		t.Fatal(err)
	}
	if li != d.base+"/lineitems/5/lineitem?type_id=3" {
		t.Fatalf("line item %q", li)
	}
	all, err := c.LineItems(ctx, d.p, d.base+"/lineitems", "")
	if err != nil || len(all) != 5 {
		t.Fatalf("paging line items: %d %v", len(all), err)
	}
	base := time.Now()
	for i, u := range []string{"u1", "u2", "u3"} {
		s := Score{UserID: u, ScoreGiven: float64(i + 1), ScoreMaximum: 10, Comment: "c", Timestamp: base.Add(time.Duration(i) * time.Microsecond)}
		if o := c.PostScore(ctx, d.p, li, s); o.Status != Sent {
			t.Fatalf("score %s: %+v", u, o)
		}
	}
	// Newer score for u1 wins; an older one arriving later is superseded.
	if o := c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 9, ScoreMaximum: 10, Timestamp: base.Add(time.Second)}); o.Status != Sent {
		t.Fatalf("newer: %+v", o)
	}
	o := c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 2, ScoreMaximum: 10, Timestamp: base.Add(500 * time.Millisecond)})
	if o.Status != Superseded || o.HTTPStatus != 409 {
		t.Fatalf("older: %+v", o)
	}
	// Equal timestamp: Moodle refuses too.
	o = c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 3, ScoreMaximum: 10, Timestamp: base.Add(time.Second)})
	if o.Status != Superseded {
		t.Fatalf("equal: %+v", o)
	}
	rs, err := c.Results(ctx, d.p, li, "u1")
	if err != nil || len(rs) != 1 || *rs[0].ResultScore != 9 {
		t.Fatalf("results u1: %+v %v", rs, err)
	}
	rs, err = c.Results(ctx, d.p, li, "") // 3 results, 2 per page
	if err != nil || len(rs) != 3 {
		t.Fatalf("results all: %+v %v", rs, err)
	}
	g := d.grades(t)
	if g.Stats["assertion_failures"] != 0 {
		t.Fatalf("stats %v", g.Stats)
	}
	// One token per scope set: score, result.readonly, lineitem.readonly.
	if g.Stats["token_requests"] != 3 || g.Stats["tokens_issued"] != 3 {
		t.Fatalf("token requests: %v", g.Stats)
	}
	if g.Stats["ordering_refusals"] != 2 || len(g.Scores) != 3 || g.Scores[0].CanvasNewSubmission != nil {
		t.Fatalf("grades %+v", g)
	}

	// Canvas: the double checks the extension's shape.
	p := d.p
	p.Canvas = true
	if o := c.PostScore(ctx, p, li, Score{UserID: "u9", ScoreGiven: 1, ScoreMaximum: 1, Timestamp: time.Now()}); o.Status != Sent {
		t.Fatalf("canvas: %+v", o)
	}

	// Revoked tokens: 401 to the cached token, a new token fetched once,
	// and the score sent again with it.
	d.post(t, "/expire-tokens", "")
	o = c.PostScore(ctx, d.p, li, Score{UserID: "u2", ScoreGiven: 5, ScoreMaximum: 10, Timestamp: time.Now()})
	if o.Status != Sent {
		t.Fatalf("expired token: %+v", o)
	}
	if g := d.grades(t); g.Stats["unauthorized"] != 1 {
		t.Fatalf("stats %v", g.Stats)
	}

	// Faults: 429 with Retry-After, 503.
	d.post(t, "/faults", `[{"route":"scores","status":429,"retry_after":4},{"route":"scores","status":503}]`)
	o = c.PostScore(ctx, d.p, li, Score{UserID: "u3", ScoreGiven: 5, ScoreMaximum: 10, Timestamp: time.Now()})
	if o.Status != Retry || o.RetryAfter != 4*time.Second {
		t.Fatalf("429: %+v", o)
	}
	if o := c.PostScore(ctx, d.p, li, Score{UserID: "u3", ScoreGiven: 5, ScoreMaximum: 10, Timestamp: time.Now()}); o.Status != Retry {
		t.Fatalf("503: %+v", o)
	}
	g = d.grades(t)
	if g.Stats["tokens_issued"] != 4 { // 3 scope sets + the refetch after the 401
		t.Fatalf("stats %v", g.Stats)
	}
}

// The double must be able to say no: an assertion signed by a key that is
// not in the JWKS, or for the wrong client, is refused.
func TestPyDoubleRejectsForeignKey(t *testing.T) {
	d := startDouble(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	li := d.base + "/lineitems/1/lineitem?type_id=3"
	s := Score{UserID: "u1", ScoreGiven: 1, ScoreMaximum: 1, Timestamp: time.Now()}

	p := d.p
	p.Key = other // same kid, wrong key: the signature must fail
	o := (&Client{}).PostScore(ctx, p, li, s)
	if o.Status != Rejected || !strings.Contains(o.Message, "invalid_client") || !strings.Contains(o.Message, "Signature verification failed") {
		t.Fatalf("foreign key: %+v", o)
	}
	p = d.p
	p.KeyID = keys.KeyID(&other.PublicKey)
	if o := (&Client{}).PostScore(ctx, p, li, s); o.Status != Rejected || !strings.Contains(o.Message, "unknown kid") {
		t.Fatalf("unknown kid: %+v", o)
	}
	p = d.p
	p.ClientID = "someone-else"
	if o := (&Client{}).PostScore(ctx, p, li, s); o.Status != Rejected || !strings.Contains(o.Message, "invalid_client") {
		t.Fatalf("wrong client: %+v", o)
	}
	p = d.p
	p.Audience = "https://elsewhere.example/token"
	if o := (&Client{}).PostScore(ctx, p, li, s); o.Status != Rejected || !strings.Contains(o.Message, "Audience") {
		t.Fatalf("wrong aud: %+v", o)
	}
	// Token clock too far off: exp in the past.
	c := &Client{Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}
	if o := c.PostScore(ctx, d.p, li, s); o.Status != Rejected || !strings.Contains(o.Message, "expired") {
		t.Fatalf("expired assertion: %+v", o)
	}
	g := d.grades(t)
	if g.Stats["assertion_failures"] != 5 || g.Stats["tokens_issued"] != 0 || len(g.Scores) != 0 {
		t.Fatalf("stats %v", g.Stats)
	}
	// And the right key works.
	if o := (&Client{}).PostScore(ctx, d.p, li, s); o.Status != Sent {
		t.Fatalf("good key: %+v", o)
	}
}
