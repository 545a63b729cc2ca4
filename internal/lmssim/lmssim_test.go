package lmssim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/lti11"
)

const (
	key    = "demo-key"
	secret = "demo-secret"
)

func start(t *testing.T) (*Sim, string) {
	t.Helper()
	s := New(map[string]string{key: secret, "other": "other-secret"})
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, base + "/outcomes"
}

func send(t *testing.T, url string, r lti11.ResultRequest) lti11.Outcome {
	t.Helper()
	return (&lti11.Client{}).Do(context.Background(), url, key, secret, r)
}

func replace(sid, score string) lti11.ResultRequest {
	return lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: sid, Score: score}
}

func TestReplaceReadDelete(t *testing.T) {
	s, url := start(t)
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	moodle := `{"data":{"instanceid":"2","userid":"4","typeid":null,"launchid":1},"hash":"<&>"}`

	r := replace(moodle, "0.85")
	r.ResultDataText, r.SubmittedAt = "notebook <b>", &at
	o := send(t, url, r)
	if o.Status != lti11.Sent || o.Response.Description != "Score for "+moodle+" is now 0.85" || o.Response.Operation != "replaceResult" {
		t.Fatalf("replace: %+v %+v", o, o.Response)
	}
	g, ok := s.Grade(moodle)
	if !ok || g.Score != "0.85" || g.ResultDataText != "notebook <b>" || g.SubmittedAt != at.UTC().Format(time.RFC3339) || g.Writes != 1 || g.Updated.IsZero() {
		t.Fatalf("stored %+v", g)
	}

	r = replace(moodle, "1.0")
	r.ResultDataURL = "https://hub.example/n?a=1&b=2"
	if o := send(t, url, r); o.Status != lti11.Sent {
		t.Fatalf("rewrite: %+v", o)
	}
	if g, _ := s.Grade(moodle); g.Score != "1.0" || g.Writes != 2 || g.ResultDataURL != "https://hub.example/n?a=1&b=2" || g.ResultDataText != "" {
		t.Errorf("rewrite stored %+v", g)
	}

	o = send(t, url, lti11.ResultRequest{Op: lti11.ReadResult, SourcedID: moodle, MessageID: "read-1"})
	if o.Status != lti11.Sent || !o.Response.HasScore || o.Response.Score != "1.0" || o.Response.MessageRefID != "read-1" {
		t.Fatalf("read: %+v %+v", o, o.Response)
	}
	if o := send(t, url, lti11.ResultRequest{Op: lti11.DeleteResult, SourcedID: moodle}); o.Status != lti11.Sent {
		t.Fatalf("delete: %+v", o)
	}
	if _, ok := s.Grade(moodle); ok {
		t.Error("grade survived delete")
	}
	o = send(t, url, lti11.ResultRequest{Op: lti11.ReadResult, SourcedID: moodle})
	if o.Status != lti11.Sent || o.Response.HasScore {
		t.Errorf("read after delete: %+v %+v", o, o.Response)
	}
	if s.Requests() != 5 {
		t.Errorf("requests %d", s.Requests())
	}
}

func TestScoreValidation(t *testing.T) {
	s, url := start(t)
	for _, score := range []string{"0", "1", "1.0", ".5", "0.85", "1.", " 0.5 "} {
		if o := send(t, url, replace("ok", score)); o.Status != lti11.Sent {
			t.Errorf("score %q: %+v", score, o)
		}
	}
	for _, score := range []string{"1.5", "-0.1", "-0", "abc", "1e-1", "NaN", "0x1p-1", "+0.5", "1,5", "Inf"} {
		o := send(t, url, replace("bad", score))
		if o.Status != lti11.Rejected || o.HTTPStatus != 200 || !strings.Contains(o.Message, "Score must be a decimal") {
			t.Errorf("score %q: %+v", score, o)
		}
	}
	if _, ok := s.Grade("bad"); ok {
		t.Error("bad score stored")
	}
	future := time.Now().Add(time.Hour)
	r := replace("bad", "0.5")
	r.SubmittedAt = &future
	if o := send(t, url, r); o.Status != lti11.Rejected || !strings.Contains(o.Message, "future") {
		t.Errorf("future submittedAt: %+v", o)
	}
}

func TestAuthentication(t *testing.T) {
	s, url := start(t)
	c := &lti11.Client{}
	for name, cred := range map[string][2]string{
		"wrong secret": {key, "nope"},
		"unknown key":  {"stranger", secret},
		"crossed keys": {"other", secret},
	} {
		o := c.Do(context.Background(), url, cred[0], cred[1], replace("s", "0.5"))
		if o.Status != lti11.Rejected || o.HTTPStatus != 401 {
			t.Errorf("%s: %+v", name, o)
		}
	}
	skewed := func(d time.Duration) lti11.Outcome {
		c := &lti11.Client{Now: func() time.Time { return time.Now().Add(d) }}
		return c.Do(context.Background(), url, key, secret, replace("s", "0.5"))
	}
	if o := skewed(-91 * time.Minute); o.Status != lti11.Rejected || !strings.Contains(o.Message, "Expired timestamp") {
		t.Errorf("old timestamp: %+v", o)
	}
	if o := skewed(91 * time.Minute); o.Status != lti11.Rejected {
		t.Errorf("future timestamp: %+v", o)
	}
	if o := skewed(89 * time.Minute); o.Status != lti11.Sent {
		t.Errorf("timestamp inside window: %+v", o)
	}
	if g, _ := s.Grade("s"); g.Writes != 1 {
		t.Errorf("writes %d", g.Writes)
	}
}

// signedPost sends body signed with a fixed nonce, bypassing lti11.Client.
func signedPost(t *testing.T, url, nonce, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/xml")
	sg := lti11.Signer{Key: key, Secret: secret, Nonce: func() string { return nonce }}
	if err := sg.Sign(req, []byte(body)); err != nil {
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

func TestDuplicateNonce(t *testing.T) {
	_, url := start(t)
	body, _ := lti11.BuildPOX(replace("s", "0.5"))
	if code, _ := signedPost(t, url, "n-1", string(body)); code != 200 {
		t.Fatalf("first: %d", code)
	}
	code, resp := signedPost(t, url, "n-1", string(body))
	if code != 401 || !strings.Contains(resp, "Duplicate nonce detected") {
		t.Fatalf("replay: %d %q", code, resp)
	}
}

func TestMalformedRequests(t *testing.T) {
	_, url := start(t)
	for name, tc := range map[string]struct{ body, want string }{
		"doctype":      {`<!DOCTYPE x [<!ENTITY a "b">]><imsx_POXEnvelopeRequest/>`, "DOCTYPE"},
		"not xml":      {`{"score":1}`, "Invalid XML"},
		"wrong root":   {`<foo/>`, "Not an imsx_POXEnvelopeRequest"},
		"unsupported":  {`<imsx_POXEnvelopeRequest><imsx_POXBody><readMembershipRequest><resultRecord><sourcedGUID><sourcedId>s</sourcedId></sourcedGUID></resultRecord></readMembershipRequest></imsx_POXBody></imsx_POXEnvelopeRequest>`, "<imsx_codeMajor>unsupported"},
		"no sourcedid": {`<imsx_POXEnvelopeRequest><imsx_POXBody><readResultRequest/></imsx_POXBody></imsx_POXEnvelopeRequest>`, "Missing sourcedid"},
		"no score":     {`<imsx_POXEnvelopeRequest><imsx_POXBody><replaceResultRequest><resultRecord><sourcedGUID><sourcedId>s</sourcedId></sourcedGUID></resultRecord></replaceResultRequest></imsx_POXBody></imsx_POXEnvelopeRequest>`, "Missing score"},
	} {
		code, resp := signedPost(t, url, "nonce-"+name, tc.body)
		if code != 200 || !strings.Contains(resp, tc.want) {
			t.Errorf("%s: %d %s", name, code, resp)
		}
		if r, err := lti11.ParseResponse([]byte(resp)); err != nil || r.CodeMajor == "success" {
			t.Errorf("%s: response %+v %v", name, r, err)
		}
	}
}

func TestRosterAndFailureStatus(t *testing.T) {
	s, url := start(t)
	s.SetRoster("alice", "bob")
	if o := send(t, url, replace("alice", "0.5")); o.Status != lti11.Sent {
		t.Errorf("alice: %+v", o)
	}
	o := send(t, url, replace("mallory", "0.5"))
	if o.Status != lti11.Rejected || o.HTTPStatus != 200 || o.Response.Description != "Invalid sourcedid" {
		t.Errorf("mallory (moodle style): %+v", o)
	}
	s.SetFailureStatus(http.StatusUnprocessableEntity)
	o = send(t, url, lti11.ResultRequest{Op: lti11.ReadResult, SourcedID: "mallory"})
	if o.Status != lti11.Rejected || o.HTTPStatus != 422 {
		t.Errorf("mallory (canvas style): %+v", o)
	}
	s.SetRoster()
	if o := send(t, url, replace("mallory", "0.5")); o.Status != lti11.Sent {
		t.Errorf("roster lifted: %+v", o)
	}
}

func TestFaults(t *testing.T) {
	s, url := start(t)
	s.Inject(
		Fault{Status: 503, Body: "down", Repeat: 3},
		Fault{Status: 429, RetryAfter: "7"},
		Fault{Drop: true},
		Fault{Status: 200, Body: "garbage"},
		Fault{Status: 200, Body: strings.Repeat("x", 2<<20)},
		Fault{Status: 422, Body: `<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_codeMajor>failure</imsx_codeMajor><imsx_description>Course not available for student</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`},
	)
	want := []struct {
		status lti11.Status
		code   int
		ra     time.Duration
	}{
		{lti11.Retry, 503, 0}, {lti11.Retry, 503, 0}, {lti11.Retry, 503, 0},
		{lti11.Retry, 429, 7 * time.Second},
		{lti11.Retry, 0, 0},
		{lti11.Retry, 200, 0},
		{lti11.Retry, 200, 0},
		{lti11.Rejected, 422, 0},
		{lti11.Sent, 200, 0},
	}
	for i, w := range want {
		o := send(t, url, replace("s", "0.5"))
		if o.Status != w.status || o.HTTPStatus != w.code || o.RetryAfter != w.ra {
			t.Errorf("request %d: %+v, want %v %d %s", i, o, w.status, w.code, w.ra)
		}
	}
	if g, _ := s.Grade("s"); g.Writes != 1 {
		t.Errorf("faulted requests wrote grades: %+v", g)
	}
	if s.Requests() != len(want) {
		t.Errorf("requests %d, want %d", s.Requests(), len(want))
	}
}

func TestDelayedRequestStillProcessed(t *testing.T) {
	s, url := start(t)
	s.Inject(Fault{Delay: 300 * time.Millisecond})
	c := &lti11.Client{HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
	o := c.Do(context.Background(), url, key, secret, replace("slow", "0.25"))
	if o.Status != lti11.Retry || !strings.Contains(o.Message, "timed out") {
		t.Fatalf("got %+v", o)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if g, ok := s.Grade("slow"); ok && g.Score == "0.25" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delayed grade never stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLatency(t *testing.T) {
	s, url := start(t)
	s.SetLatency(100 * time.Millisecond)
	begin := time.Now()
	if o := send(t, url, replace("s", "0.5")); o.Status != lti11.Sent {
		t.Fatal(o)
	}
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Errorf("latency not applied: %s", d)
	}
}

func TestGradesJSONAndHandler(t *testing.T) {
	s := New(map[string]string{key: secret})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, sid := range []string{"b", "a", "c"} {
		if o := send(t, srv.URL+"/outcomes", replace(sid, "0.5")); o.Status != lti11.Sent {
			t.Fatal(o)
		}
	}
	resp, err := http.Get(srv.URL + "/grades.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []Grade
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].SourcedID != "a" || got[2].SourcedID != "c" || got[1].Score != "0.5" || got[1].Writes != 1 {
		t.Errorf("grades.json %+v", got)
	}
	if g := s.Grades(); len(g) != 3 || g[0].SourcedID != "a" {
		t.Errorf("Grades %+v", g)
	}
	if resp, err := http.Get(srv.URL + "/outcomes"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /outcomes: %v %v", resp.StatusCode, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s, url := start(t)
	s.Inject(Fault{Status: 503, Repeat: 10})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				sid := fmt.Sprintf("u%d-%d", w, i)
				for {
					if o := send(t, url, replace(sid, "0.5")); o.Status == lti11.Sent {
						break
					} else if o.Status != lti11.Retry {
						t.Errorf("%s: %+v", sid, o)
						return
					}
				}
				s.Grades()
			}
		}()
	}
	wg.Wait()
	if n := len(s.Grades()); n != 80 {
		t.Errorf("%d grades", n)
	}
	if s.Requests() != 90 {
		t.Errorf("requests %d", s.Requests())
	}
}

func TestStartClose(t *testing.T) {
	s := New(nil)
	if err := s.Close(); err != nil {
		t.Errorf("close before start: %v", err)
	}
	if _, err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("start after close")
	}
	s = New(map[string]string{key: secret})
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second start")
	}
	// A handler parked in a long delay must not hold Close up.
	s.Inject(Fault{Delay: time.Hour})
	done := make(chan lti11.Outcome)
	go func() {
		done <- (&lti11.Client{}).Do(context.Background(), base+"/outcomes", key, secret, replace("x", "1"))
	}()
	for s.Requests() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	closed := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	s.Close()
	if o := <-done; o.Status != lti11.Retry || time.Since(closed) > 5*time.Second {
		t.Errorf("client after close: %+v", o)
	}
	if _, ok := s.Grade("x"); ok {
		t.Error("grade stored after close")
	}
}
