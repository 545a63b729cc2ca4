package ags

// Platform behaviour seen against a real Moodle 4.3 and Open edX's
// xblock-lti-consumer, reproduced by testdata/agsdouble/platform.py
// --platform moodle|edx (see its docstring).

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Moodle refuses an older or same-second score with 409 whose reason is
// only in the status line; the body is "[]". The outcome is superseded and
// says why in Moodle's words, not "[]". The line item keeps ?type_id=N:
// scores and results go to .../lineitem/scores?type_id=N.
func TestMoodleRefusalReasonInStatusLine(t *testing.T) {
	d := startDouble(t, "--platform", "moodle")
	ctx := context.Background()
	c := &Client{}
	li := d.base + "/lineitems/1/lineitem?type_id=3"
	at := time.Now().Truncate(time.Second).Add(100 * time.Millisecond)
	o := c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 5, ScoreMaximum: 10, Timestamp: at})
	if o.Status != Sent || o.HTTPStatus != 200 {
		t.Fatalf("first score: %+v", o)
	}
	// Later by 500 ms, but in the same second: Moodle compares seconds.
	o = c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 6, ScoreMaximum: 10, Timestamp: at.Add(500 * time.Millisecond)})
	if o.Status != Superseded || o.HTTPStatus != 409 {
		t.Fatalf("same-second score: %+v", o)
	}
	if !strings.Contains(o.Message, "Refusing score with an earlier timestamp for item 1 and user u1") || strings.Contains(o.Message, "[]") {
		t.Fatalf("message %q: want Moodle's reason from the status line, not its body", o.Message)
	}
	rs, err := c.Results(ctx, d.p, li, "u1")
	if err != nil || len(rs) != 1 || *rs[0].ResultScore != 5 {
		t.Fatalf("results (type_id kept): %+v %v", rs, err)
	}
	if g := d.grades(t); g.Stats["ordering_refusals"] != 1 || g.Stats["scores_stored"] != 1 {
		t.Fatalf("stats %v", g.Stats)
	}
}

// edX answers 403, not 401, to a token it no longer accepts (here: after
// the platform rotated its key). A 401 or 403 on a cached token drops it,
// fetches one new token, and sends the score again with it; a second
// refusal is classified as usual, with no further token request.
func TestEdXRefusedCachedToken403(t *testing.T) {
	d := startDouble(t, "--platform", "edx")
	ctx := context.Background()
	c := &Client{}
	li := d.base + "/lineitems/1/lineitem"
	if o := c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 1, ScoreMaximum: 10, Timestamp: time.Now()}); o.Status != Sent || o.HTTPStatus != 201 {
		t.Fatalf("first score: %+v", o)
	}
	d.post(t, "/rotate-key", "")
	o := c.PostScore(ctx, d.p, li, Score{UserID: "u1", ScoreGiven: 2, ScoreMaximum: 10, Timestamp: time.Now()})
	if o.Status != Sent {
		t.Fatalf("score after the platform's key rotation: %+v; want sent with a new token", o)
	}
	// Reads too.
	if _, err := c.Results(ctx, d.p, li, "u1"); err != nil {
		t.Fatal(err)
	}
	d.post(t, "/rotate-key", "")
	rs, err := c.Results(ctx, d.p, li, "u1")
	if err != nil || len(rs) != 1 || *rs[0].ResultScore != 2 {
		t.Fatalf("results after rotation: %+v %v", rs, err)
	}
	g := d.grades(t)
	// score: 2 tokens; result.readonly: 2 tokens.
	if g.Stats["tokens_issued"] != 4 || g.Stats["unauthorized"] != 2 {
		t.Fatalf("stats %v", g.Stats)
	}
}

// edX ignores ?user_id= on results and returns every user's result: the
// client keeps only the one asked for.
func TestEdXResultsOfEveryUser(t *testing.T) {
	d := startDouble(t, "--platform", "edx")
	ctx := context.Background()
	c := &Client{}
	li := d.base + "/lineitems/2/lineitem"
	for i, u := range []string{"u1", "u2", "u3"} {
		if o := c.PostScore(ctx, d.p, li, Score{UserID: u, ScoreGiven: float64(i), ScoreMaximum: 10, Timestamp: time.Now()}); o.Status != Sent {
			t.Fatalf("%s: %+v", u, o)
		}
	}
	// The double must really ignore the filter, or this test proves nothing.
	tok, err := c.Token(ctx, d.p, ScopeResultReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", d.base+"/lineitems/2/lineitem/results?user_id=u2", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Link"), "rel=") {
		t.Fatalf("edX double filtered by user_id (no second page of 3 results at 2 per page)")
	}
	rs, err := c.Results(ctx, d.p, li, "u2")
	if err != nil || len(rs) != 1 || rs[0].UserID != "u2" || *rs[0].ResultScore != 1 {
		t.Fatalf("results for u2: %+v %v", rs, err)
	}
}

// A reply lost on the way back: edX stored the score, the client saw the
// connection drop. The same score sent again (same timestamp) is refused
// with 400 "Score already exists for the provided timestamp": delivered,
// when the caller says an earlier attempt sent it; otherwise someone else's
// score holds that timestamp and the refusal stands.
func TestEdXSameTimestampAfterLostReply(t *testing.T) {
	d := startDouble(t, "--platform", "edx")
	ctx := context.Background()
	c := &Client{}
	li := d.base + "/lineitems/1/lineitem"
	s := Score{UserID: "u1", ScoreGiven: 7, ScoreMaximum: 10, Timestamp: time.Now()}
	d.post(t, "/faults", `[{"route": "scores", "lose_reply": true}]`)
	o := c.PostScore(ctx, d.p, li, s)
	if o.Status != Retry || o.HTTPStatus != 0 || o.NotSent {
		t.Fatalf("lost reply: %+v", o)
	}
	if g := d.grades(t); g.Stats["lost_replies"] != 1 || len(g.Scores) != 1 {
		t.Fatalf("the double did not store the score: %+v", g)
	}
	o = c.PostScore(ctx, d.p, li, s)
	if o.Status != Rejected || o.HTTPStatus != 400 || !strings.Contains(o.Message, "Score already exists for the provided timestamp") {
		t.Fatalf("same timestamp, no earlier attempt: %+v", o)
	}
	s.Resent = true
	o = c.PostScore(ctx, d.p, li, s)
	if o.Status != Sent || o.HTTPStatus != 400 || !strings.Contains(o.Message, "earlier attempt") {
		t.Fatalf("same timestamp after an attempt of ours: %+v", o)
	}
	// An older score is refused in other words: superseded, resent or not.
	old := Score{UserID: "u1", ScoreGiven: 1, ScoreMaximum: 10, Timestamp: s.Timestamp.Add(-time.Second), Resent: true}
	o = c.PostScore(ctx, d.p, li, old)
	if o.Status != Superseded || !strings.Contains(o.Message, "timestamp: Score timestamp can only be updated to a later point in time") {
		t.Fatalf("older score: %+v", o)
	}
}

// edX negotiates the Accept header of line item reads strictly:
// application/json alone gets 406. Line items are read with their own
// media types.
func TestEdXLineItemMediaTypes(t *testing.T) {
	d := startDouble(t, "--platform", "edx")
	ctx := context.Background()
	c := &Client{}
	// The double must say no to plain JSON.
	tok, err := c.Token(ctx, d.p, ScopeLineItemReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/lineitems", "/lineitems/3/lineitem"} {
		req, _ := http.NewRequest("GET", d.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotAcceptable {
			t.Fatalf("%s with Accept: application/json: HTTP %d, want 406", path, resp.StatusCode)
		}
	}
	it, err := c.LineItem(ctx, d.p, d.base+"/lineitems/3/lineitem")
	if err != nil || it.Label != "Item 3" || it.ResourceLinkID != "rl-3" || it.ScoreMaximum != 10 {
		t.Fatalf("line item: %+v %v", it, err)
	}
	li, err := c.FindLineItem(ctx, d.p, d.base+"/lineitems", "rl-4")
	if err != nil || li != d.base+"/lineitems/4/lineitem" {
		t.Fatalf("find: %q %v", li, err)
	}
	if g := d.grades(t); g.Stats["not_acceptable"] != 2 {
		t.Fatalf("stats %v", g.Stats)
	}
}

// A cached token refused twice: one new token, one resend, then the
// refusal is classified (403: rejected; 401: retry, the new token dropped
// too). A 403 to a token fetched for this very call is a real refusal: no
// new token.
func TestRefusedTokenRenewedOnce(t *testing.T) {
	for _, code := range []int{401, 403} {
		f := newFake(t)
		var scores atomic.Int32
		refuse := atomic.Bool{}
		f.score = func(w http.ResponseWriter, r *http.Request) {
			scores.Add(1)
			if refuse.Load() {
				w.WriteHeader(code)
				io.WriteString(w, `{"detail": "Invalid token signature."}`)
				return
			}
			w.WriteHeader(201)
		}
		c := &Client{}
		p := f.platform(t)
		if o := c.PostScore(context.Background(), p, f.srv.URL+"/li/1", testScore()); o.Status != Sent {
			t.Fatalf("%d: first: %+v", code, o)
		}
		refuse.Store(true)
		o := c.PostScore(context.Background(), p, f.srv.URL+"/li/1", testScore())
		want := map[int]Status{401: Retry, 403: Rejected}[code]
		if o.Status != want || o.HTTPStatus != code || !strings.Contains(o.Message, "Invalid token signature") || strings.Contains(o.Message, secretToken) {
			t.Fatalf("%d: refused twice: %+v", code, o)
		}
		if f.tokens.Load() != 2 || scores.Load() != 3 {
			t.Fatalf("%d: %d token requests and %d score requests, want 2 and 3", code, f.tokens.Load(), scores.Load())
		}
	}
	// A fresh token refused with 403: no new token, no resend.
	f := newFake(t)
	f.score = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }
	if o := (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore()); o.Status != Rejected || f.tokens.Load() != 1 {
		t.Fatalf("fresh token, 403: %+v after %d token requests", o, f.tokens.Load())
	}
}
