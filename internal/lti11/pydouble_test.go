package lti11

// Tests against testdata/lmsdouble/lms.py, an LMS that verifies with Python's
// oauthlib. Our own Verify would accept whatever our Signer produces if both
// shared a bug; oauthlib shares no code with either.
//
// The Python comes from LTIGRADE_PYTHON or from scripts/python-env.sh (which
// builds a cached venv with a pinned oauthlib). Set LTIGRADE_SKIP_PYTHON=1 to
// skip these tests; otherwise a missing Python is a failure, not a skip, so
// that CI cannot go green without the independent check.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		t.Skip("LTIGRADE_SKIP_PYTHON=1: skipping the independent oauthlib LMS double")
	}
	py, err := testenv.Python()
	if err != nil {
		t.Fatalf("cannot get the python venv (set LTIGRADE_PYTHON, or LTIGRADE_SKIP_PYTHON=1 to skip): %v", err)
	}
	return py
}

type lockedBuffer = testenv.LockedBuffer

type pyDouble struct {
	base string
}

func startPyDouble(t *testing.T, consumers ...string) *pyDouble {
	t.Helper()
	py := python(t)
	root := repoRoot(t)
	portFile := filepath.Join(t.TempDir(), "port")
	args := []string{filepath.Join(root, "testdata", "lmsdouble", "lms.py"), "--port-file", portFile}
	for _, c := range consumers {
		args = append(args, "--consumer", c)
	}
	cmd := exec.Command(py, args...)
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lms.py: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		c := &http.Client{Timeout: 2 * time.Second}
		if resp, err := c.Post(fmt.Sprintf("http://127.0.0.1:%s/shutdown", readPort(portFile)), "text/plain", nil); err == nil {
			resp.Body.Close()
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("lms.py output:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if port := readPort(portFile); port != "" {
			return &pyDouble{base: "http://127.0.0.1:" + port}
		}
		select {
		case <-exited:
			t.Fatalf("lms.py exited early:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lms.py did not write its port file:\n%s", stderr.String())
		}
	}
}

func readPort(f string) string {
	b, err := os.ReadFile(f)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

type pyFault struct {
	Status     int    `json:"status,omitempty"`
	Body       string `json:"body,omitempty"`
	RetryAfter string `json:"retry_after,omitempty"`
	DelayMS    int    `json:"delay_ms,omitempty"`
	Drop       bool   `json:"drop,omitempty"`
	Repeat     int    `json:"repeat,omitempty"`
}

func (d *pyDouble) inject(t *testing.T, faults ...pyFault) {
	t.Helper()
	b, _ := json.Marshal(faults)
	resp, err := http.Post(d.base+"/faults", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /faults: %s", resp.Status)
	}
}

type pyGrade struct {
	SourcedID      string `json:"sourced_id"`
	Score          string `json:"score"`
	ResultDataText string `json:"result_data_text"`
	ResultDataURL  string `json:"result_data_url"`
	SubmittedAt    string `json:"submitted_at"`
	Writes         int    `json:"writes"`
}

func (d *pyDouble) grades(t *testing.T) map[string]pyGrade {
	t.Helper()
	resp, err := http.Get(d.base + "/grades.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []pyGrade
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	m := map[string]pyGrade{}
	for _, g := range rows {
		m[g.SourcedID] = g
	}
	return m
}

const (
	pyKey    = "jupyterhub-consumer"
	pySecret = "py s3cret&with/odd=chars+~"
)

func TestPyDoubleRoundTrip(t *testing.T) {
	d := startPyDouble(t, pyKey+":"+pySecret)
	c := &Client{}
	ctx := context.Background()
	// Moodle-style JSON sourcedId, with characters XML and OAuth both escape.
	sid := `{"data":{"instanceid":"2","userid":"4","typeid":null,"launchid":1},"hash":"a<b>&c'd ü"}`
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	urls := []string{d.base + "/outcomes", d.base + "/outcomes?tool=7&q=a+b%20c&empty=&x=%7E"}
	for _, u := range urls {
		r := ResultRequest{Op: ReplaceResult, SourcedID: sid, Score: "0.85", ResultDataText: "notebook <ok> & done", SubmittedAt: &at}
		if o := c.Do(ctx, u, pyKey, pySecret, r); o.Status != Sent {
			t.Fatalf("replaceResult via %s: %+v", u, o)
		}
	}
	g, ok := d.grades(t)[sid]
	if !ok || g.Score != "0.85" || g.ResultDataText != "notebook <ok> & done" || g.SubmittedAt != at.Format(time.RFC3339) || g.Writes != 2 {
		t.Fatalf("stored %+v (found %v)", g, ok)
	}
	r := ResultRequest{Op: ReplaceResult, SourcedID: "url-user", Score: "1", ResultDataURL: "https://hub.example/user/a/lab?x=1&y=2"}
	if o := c.Do(ctx, urls[0], pyKey, pySecret, r); o.Status != Sent {
		t.Fatalf("replaceResult with url: %+v", o)
	}
	if g := d.grades(t)["url-user"]; g.ResultDataURL != "https://hub.example/user/a/lab?x=1&y=2" || g.Score != "1" {
		t.Errorf("url grade %+v", g)
	}

	o := c.Do(ctx, urls[1], pyKey, pySecret, ResultRequest{Op: ReadResult, SourcedID: sid})
	if o.Status != Sent || o.Response == nil || !o.Response.HasScore || o.Response.Score != "0.85" {
		t.Fatalf("readResult: %+v", o)
	}
	if o := c.Do(ctx, urls[0], pyKey, pySecret, ResultRequest{Op: DeleteResult, SourcedID: sid}); o.Status != Sent {
		t.Fatalf("deleteResult: %+v", o)
	}
	if _, ok := d.grades(t)[sid]; ok {
		t.Error("grade survived deleteResult")
	}
	o = c.Do(ctx, urls[0], pyKey, pySecret, ResultRequest{Op: ReadResult, SourcedID: sid})
	if o.Status != Sent || o.Response.HasScore {
		t.Errorf("readResult after delete: %+v", o)
	}

	o = c.Do(ctx, urls[0], pyKey, pySecret, ResultRequest{Op: ReplaceResult, SourcedID: "bad", Score: "1.5"})
	if o.Status != Rejected || o.HTTPStatus != 200 || !strings.Contains(o.Message, "Score must be a decimal") {
		t.Errorf("out-of-range score: %+v", o)
	}
}

// TestPyDoubleCanFail proves the double is not a rubber stamp: it must refuse
// a wrong secret and a body that does not match its hash.
func TestPyDoubleCanFail(t *testing.T) {
	d := startPyDouble(t, pyKey+":"+pySecret)
	c := &Client{}
	o := c.Do(context.Background(), d.base+"/outcomes", pyKey, pySecret+"x", ResultRequest{Op: ReplaceResult, SourcedID: "s", Score: "0.5"})
	if o.Status != Rejected || o.HTTPStatus != 401 || !strings.Contains(o.Message, "Invalid signature") {
		t.Errorf("wrong secret: %+v", o)
	}
	o = c.Do(context.Background(), d.base+"/outcomes", "stranger", pySecret, ResultRequest{Op: ReplaceResult, SourcedID: "s", Score: "0.5"})
	if o.Status != Rejected || o.HTTPStatus != 401 {
		t.Errorf("unknown key: %+v", o)
	}
	if len(d.grades(t)) != 0 {
		t.Error("rejected request stored a grade")
	}

	body, _ := BuildPOX(ResultRequest{Op: ReplaceResult, SourcedID: "s", Score: "0.5"})
	send := func(signed, sent []byte, rawURL, nonce string) (int, string) {
		req, _ := http.NewRequest("POST", rawURL, bytes.NewReader(sent))
		req.Header.Set("Content-Type", "application/xml")
		s := Signer{Key: pyKey, Secret: pySecret}
		if nonce != "" {
			s.Nonce = func() string { return nonce }
		}
		if err := s.Sign(req, signed); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tampered := bytes.Replace(body, []byte("0.5"), []byte("1.0"), 1)
	if code, msg := send(body, tampered, d.base+"/outcomes", ""); code != 401 || msg != "Invalid body hash" {
		t.Errorf("tampered body: %d %q", code, msg)
	}
	// Signed for one query, sent with another.
	req, _ := http.NewRequest("POST", d.base+"/outcomes?a=1", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/xml")
	if err := (Signer{Key: pyKey, Secret: pySecret}).Sign(req, body); err != nil {
		t.Fatal(err)
	}
	req.URL.RawQuery = "a=2"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("tampered query: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A replayed nonce: Canvas-style 401 that our client must retry.
	if code, _ := send(body, body, d.base+"/outcomes", "fixed-nonce"); code != 200 {
		t.Fatalf("first fixed nonce: %d", code)
	}
	code, msg := send(body, body, d.base+"/outcomes", "fixed-nonce")
	if code != 401 || msg != "Duplicate nonce detected" {
		t.Fatalf("replayed nonce: %d %q", code, msg)
	}
	if o := classify(code, "401 Unauthorized", []byte(msg), false); o.Status != Retry {
		t.Errorf("replayed nonce classified %+v", o)
	}
	if g := d.grades(t)["s"]; g.Writes != 1 {
		t.Errorf("writes %d, want 1", g.Writes)
	}
}

func TestPyDoubleFaults(t *testing.T) {
	d := startPyDouble(t, pyKey+":"+pySecret)
	failure := func(desc string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeResponse xmlns="` + Namespace + `"><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_codeMajor>failure</imsx_codeMajor><imsx_severity>error</imsx_severity><imsx_description>` + desc + `</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody/></imsx_POXEnvelopeResponse>`
	}
	d.inject(t,
		pyFault{Status: 503, Body: "Service Unavailable", Repeat: 3},
		pyFault{Status: 429, RetryAfter: "17"},
		pyFault{Status: 403, Body: "403 Forbidden (Rate Limit Exceeded)"},
		pyFault{Status: 200, Body: failure("User is no longer in course")},
		pyFault{Status: 422, Body: failure("Course not available for student")},
		pyFault{Status: 200, Body: "<html>oops</html>"},
		pyFault{Status: 200, Body: strings.Repeat("<", 2<<20)},
		pyFault{Drop: true},
		pyFault{DelayMS: 1500}, // processed after the client gave up
	)
	want := []struct {
		name   string
		status Status
		code   int
		ra     time.Duration
		msg    string
	}{
		{"503 #1", Retry, 503, 0, "503"},
		{"503 #2", Retry, 503, 0, "503"},
		{"503 #3", Retry, 503, 0, "503"},
		{"429", Retry, 429, 17 * time.Second, "429"},
		{"403 rate limit", Retry, 403, 0, "rate limited"},
		{"200 failure", Rejected, 200, 0, "User is no longer in course"},
		{"422 failure", Rejected, 422, 0, "Course not available for student"},
		{"200 garbage", Retry, 200, 0, "no valid pox"},
		{"200 oversized", Retry, 200, 0, "oversized"},
		{"drop", Retry, 0, 0, "request failed"},
		{"timeout", Retry, 0, 0, "timed out"},
		{"recovered", Sent, 200, 0, "Score for s is now 0.5"},
	}
	c := &Client{HTTP: &http.Client{Timeout: 500 * time.Millisecond}}
	for _, w := range want {
		o := c.Do(context.Background(), d.base+"/outcomes", pyKey, pySecret, ResultRequest{Op: ReplaceResult, SourcedID: "s", Score: "0.5"})
		if o.Status != w.status || o.HTTPStatus != w.code || o.RetryAfter != w.ra || !strings.Contains(o.Message, w.msg) {
			t.Errorf("%s: %v HTTP %d retry-after %s %q; want %v HTTP %d %s ~%q", w.name, o.Status, o.HTTPStatus, o.RetryAfter, o.Message, w.status, w.code, w.ra, w.msg)
		}
	}
	// The delayed request was stored after all, then the recovered one:
	// two writes, both of them harmless thanks to idempotence.
	deadline := time.Now().Add(10 * time.Second)
	for d.grades(t)["s"].Writes != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("grades %+v", d.grades(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGoVerifiesOauthlibSignatures runs the other direction: oauthlib's own
// client signs, our Verify checks.
func TestGoVerifiesOauthlibSignatures(t *testing.T) {
	py := python(t)
	script := filepath.Join(repoRoot(t), "testdata", "lmsdouble", "sign.py")
	secrets := func(k string) (string, bool) { return pySecret, k == pyKey }
	cases := []struct{ url, ctype, body string }{
		{"http://127.0.0.1:8080/outcomes", "application/xml", pyltiBody},
		{"https://LMS.Example.edu:443/api/lti/v1/tools/7/grade_passback?a=b+c&d=%7E&e=", "application/xml", "<x>ü &amp; \"q\"</x>"},
		{"http://lms.example/launch?z=1", "application/x-www-form-urlencoded", "a=1&b=%C3%BC&c=x+y"},
	}
	for _, c := range cases {
		cmd := exec.Command(py, script, "--url", c.url, "--key", pyKey, "--secret", pySecret, "--content-type", c.ctype)
		cmd.Stdin = strings.NewReader(c.body)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sign.py: %v\n%s", err, stderr.String())
		}
		var signed struct{ Authorization, URL string }
		if err := json.Unmarshal(out, &signed); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", signed.URL, strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.ctype)
		req.Header.Set("Authorization", signed.Authorization)
		if _, err := Verify(req, []byte(c.body), secrets, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("%s: Verify rejected oauthlib's signature: %v\n%s", c.url, err, signed.Authorization)
		}
		if _, err := Verify(req, []byte(c.body+" "), secrets, time.Now(), 5*time.Minute); err == nil {
			t.Errorf("%s: Verify accepted an altered body", c.url)
		}
	}
}
