package lmssim

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/keys"
)

var (
	testKeysOnce sync.Once
	testKeys     [2]*rsa.PrivateKey
)

// toolKeys returns two RSA keys, generated once per test binary.
func toolKeys(t testing.TB) (tool, other *rsa.PrivateKey) {
	t.Helper()
	testKeysOnce.Do(func() {
		for i := range testKeys {
			k, err := keys.Generate(2048)
			if err != nil {
				panic(err)
			}
			testKeys[i] = k.RSA()
		}
	})
	return testKeys[0], testKeys[1]
}

const agsClient = "client-1"

func startPlatform(t *testing.T) (*Platform, ags.Platform) {
	t.Helper()
	k, _ := toolKeys(t)
	kid := keys.KeyID(&k.PublicKey)
	p := NewPlatform(agsClient, &k.PublicKey, kid)
	base, err := p.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, ags.Platform{Issuer: "https://lms.example.edu", ClientID: agsClient, TokenURL: base + "/token", KeyID: kid, Key: k}
}

func TestAGSScoreOrderingAndResults(t *testing.T) {
	p, plat := startPlatform(t)
	li := p.AddLineItem("1", "rl-1")
	if !strings.HasSuffix(li, "/lineitems/1/lineitem?type_id=3") {
		t.Fatalf("line item url %q", li)
	}
	c := &ags.Client{}
	ctx := context.Background()
	t0 := time.Now()
	post := func(given float64, at time.Time, comment string) ags.Outcome {
		return c.PostScore(ctx, plat, li, ags.Score{UserID: "sub-alice", ScoreGiven: given, ScoreMaximum: 20, Comment: comment, Timestamp: at})
	}
	if o := post(17, t0, "good"); o.Status != ags.Sent {
		t.Fatalf("first score: %+v (platform: %s)", o, p.LastError())
	}
	s, ok := p.Score("1", "sub-alice")
	if !ok || s.ScoreGiven != 17 || s.ScoreMaximum != 20 || s.Comment != "good" || s.Writes != 1 ||
		s.ActivityProgress != "Completed" || s.GradingProgress != "FullyGraded" || s.CanvasNewSubmission != nil {
		t.Fatalf("stored %+v %v", s, ok)
	}
	for _, at := range []time.Time{t0, t0.Add(-time.Millisecond)} {
		if o := post(1, at, ""); o.Status != ags.Superseded || o.HTTPStatus != http.StatusConflict {
			t.Fatalf("older/equal score: %+v", o)
		}
	}
	if o := post(19, t0.Add(time.Microsecond), ""); o.Status != ags.Sent {
		t.Fatalf("newer score: %+v", o)
	}
	if s, _ := p.Score("1", "sub-alice"); s.ScoreGiven != 19 || s.Writes != 2 || s.Comment != "" {
		t.Fatalf("after newer: %+v", s)
	}
	res, err := c.Results(ctx, plat, li, "sub-alice")
	if err != nil || len(res) != 1 || *res[0].ResultScore != 19 || *res[0].ResultMaximum != 20 {
		t.Fatalf("results %+v %v", res, err)
	}
	if got := p.TokenRequests(); got != 2 { // score scope, then result.readonly
		t.Fatalf("token requests %d, want 2", got)
	}
	st := p.Stats()
	if st.ScoreRequests != 4 || st.ScoresStored != 2 || st.OrderingRefusals != 2 || st.ResultRequests != 1 {
		t.Fatalf("stats %+v", st)
	}
	if all := p.Scores(); len(all) != 1 || all[0].LineItemID != "1" {
		t.Fatalf("Scores() %+v", all)
	}
}

func TestAGSCanvasExtensionAndPlainURLs(t *testing.T) {
	p, plat := startPlatform(t)
	p.SetMoodleURLs(false)
	li := p.AddLineItem("hw", "rl-hw")
	if strings.Contains(li, "?") {
		t.Fatalf("plain url %q", li)
	}
	plat.Canvas = true
	o := (&ags.Client{}).PostScore(context.Background(), plat, li, ags.Score{UserID: "u", ScoreGiven: 1, ScoreMaximum: 1, Timestamp: time.Now()})
	if o.Status != ags.Sent {
		t.Fatalf("%+v", o)
	}
	if s, _ := p.Score("hw", "u"); s.CanvasNewSubmission == nil || *s.CanvasNewSubmission {
		t.Fatalf("canvas extension not recorded: %+v", s)
	}
}

func TestAGSAssertionChecks(t *testing.T) {
	p, plat := startPlatform(t)
	_, other := toolKeys(t)
	ctx := context.Background()
	refused := func(name string, pl ags.Platform) {
		t.Helper()
		_, err := (&ags.Client{}).Token(ctx, pl, ags.ScopeScore)
		var ae *ags.Error
		if !errors.As(err, &ae) || ae.Status != ags.Rejected || ae.HTTPStatus != http.StatusUnauthorized {
			t.Errorf("%s: got %v, want a 401 refusal", name, err)
		}
	}
	wrongKey := plat
	wrongKey.Key = other
	refused("other key, same kid", wrongKey)
	if !strings.Contains(p.LastError(), "signature") {
		t.Errorf("last error %q", p.LastError())
	}
	wrongKid := plat
	wrongKid.KeyID = "nope"
	refused("unknown kid", wrongKid)
	wrongClient := plat
	wrongClient.ClientID = "client-2"
	refused("other client id", wrongClient)
	wrongAud := plat
	wrongAud.Audience = "https://elsewhere.example/token"
	refused("wrong aud", wrongAud)
	if st := p.Stats(); st.AssertionFailures != 4 || st.TokensIssued != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Direct checks: expiry and jti replay.
	aud := p.TokenURL()
	old, _ := ags.Assertion(agsClient, aud, plat.KeyID, plat.Key, time.Now().Add(-2*time.Minute))
	if err := p.checkAssertion(old, aud); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired assertion: %v", err)
	}
	a, _ := ags.Assertion(agsClient, aud, plat.KeyID, plat.Key, time.Now())
	if err := p.checkAssertion(a, aud); err != nil {
		t.Fatalf("good assertion: %v", err)
	}
	if err := p.checkAssertion(a, aud); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("replay: %v", err)
	}
	if err := p.checkAssertion(a[:len(a)-4]+"AAAA", aud); err == nil {
		t.Errorf("tampered signature accepted")
	}
	if tok, err := (&ags.Client{}).Token(ctx, plat, ags.ScopeScore); err != nil || tok.Expiry.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("good token: %v %v", tok, err)
	}
}

func TestAGSFindLineItemPaging(t *testing.T) {
	p, plat := startPlatform(t)
	p.SetPageSize(2)
	var urls []string
	for i := 1; i <= 5; i++ {
		urls = append(urls, p.AddLineItem(fmt.Sprint(i), fmt.Sprintf("rl-%d", i)))
	}
	c := &ags.Client{}
	ctx := context.Background()
	items, err := c.LineItems(ctx, plat, p.LineItemsURL(), "")
	if err != nil || len(items) != 5 || items[4].ID != urls[4] || items[4].ResourceLinkID != "rl-5" {
		t.Fatalf("line items %+v %v", items, err)
	}
	if st := p.Stats(); st.LineItemRequests != 3 {
		t.Fatalf("want 3 pages, got %d requests", st.LineItemRequests)
	}
	got, err := c.FindLineItem(ctx, plat, p.LineItemsURL(), "rl-4")
	if err != nil || got != urls[3] {
		t.Fatalf("FindLineItem rl-4: %q %v", got, err)
	}
	if _, err := c.FindLineItem(ctx, plat, p.LineItemsURL(), "rl-9"); !errors.Is(err, ags.ErrNoLineItem) {
		t.Fatalf("missing: %v", err)
	}
	p.AddLineItem("6", "rl-4")
	if _, err := c.FindLineItem(ctx, plat, p.LineItemsURL(), "rl-4"); !errors.Is(err, ags.ErrAmbiguousLineItem) {
		t.Fatalf("ambiguous: %v", err)
	}
	// The results container pages too.
	for i := range 5 {
		c.PostScore(ctx, plat, urls[0], ags.Score{UserID: fmt.Sprint("u", i), ScoreGiven: 1, ScoreMaximum: 2, Timestamp: time.Now()})
	}
	res, err := c.Results(ctx, plat, urls[0], "")
	if err != nil || len(res) != 5 {
		t.Fatalf("results %d %v", len(res), err)
	}
}

func TestAGSRequestChecks(t *testing.T) {
	p, plat := startPlatform(t)
	li := p.AddLineItem("1", "rl-1")
	c := &ags.Client{}
	ctx := context.Background()
	tok, err := c.Token(ctx, plat, ags.ScopeScore)
	if err != nil {
		t.Fatal(err)
	}
	su, _ := ags.ScoreURL(li)
	good := `{"userId":"u","scoreGiven":1,"scoreMaximum":2,"activityProgress":"Completed","gradingProgress":"FullyGraded","timestamp":"2026-01-02T03:04:05.123456Z"}`
	for _, tc := range []struct {
		name, url, auth, ctype, body string
		want                         int
	}{
		{"no bearer", su, "", ags.ScoreMediaType, good, 401},
		{"unknown token", su, "Bearer nope", ags.ScoreMediaType, good, 401},
		{"wrong content type", su, "Bearer " + tok.AccessToken, "application/json", good, 415},
		{"not json", su, "Bearer " + tok.AccessToken, ags.ScoreMediaType, "{", 400},
		{"no sub-second timestamp", su, "Bearer " + tok.AccessToken, ags.ScoreMediaType, strings.Replace(good, ".123456", "", 1), 400},
		{"negative score", su, "Bearer " + tok.AccessToken, ags.ScoreMediaType, strings.Replace(good, `"scoreGiven":1`, `"scoreGiven":-1`, 1), 400},
		{"bad progress", su, "Bearer " + tok.AccessToken, ags.ScoreMediaType, strings.Replace(good, "FullyGraded", "Done", 1), 400},
		{"unknown line item", strings.Replace(su, "/1/", "/9/", 1), "Bearer " + tok.AccessToken, ags.ScoreMediaType, good, 404},
		{"good", su, "Bearer " + tok.AccessToken, ags.ScoreMediaType + "; charset=utf-8", good, 200},
	} {
		req, _ := http.NewRequest(http.MethodPost, tc.url, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d, want %d (%s)", tc.name, resp.StatusCode, tc.want, p.LastError())
		}
	}
	// A score-only token cannot read results.
	req, _ := http.NewRequest(http.MethodGet, strings.Replace(su, "/scores", "/results", 1), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("results with a score token: %v %v", resp, err)
	}

	// Revoked tokens: 401 to the cached one; the client fetches a new one
	// and the score, sent again with it, lands.
	p.ExpireTokens()
	s := ags.Score{UserID: "v", ScoreGiven: 1, ScoreMaximum: 1, Timestamp: time.Now()}
	if o := c.PostScore(ctx, plat, li, s); o.Status != ags.Sent {
		t.Fatalf("after expiry: %+v", o)
	}
}

func TestAGSConcurrentScoresShareOneToken(t *testing.T) {
	p, plat := startPlatform(t)
	li := p.AddLineItem("1", "rl-1")
	c := &ags.Client{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				o := c.PostScore(context.Background(), plat, li, ags.Score{UserID: fmt.Sprintf("u%d-%d", w, i),
					ScoreGiven: float64(i), ScoreMaximum: 25, Timestamp: time.Now()})
				if o.Status != ags.Sent {
					t.Errorf("%+v", o)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(p.Scores()); n != 200 {
		t.Fatalf("%d scores, want 200", n)
	}
	if n := p.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

func TestAGSHandlerLatencyClose(t *testing.T) {
	k, _ := toolKeys(t)
	p := NewPlatform(agsClient, &k.PublicKey, "")
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	p.SetBaseURL(srv.URL)
	li := p.AddLineItem("1", "rl-1")
	plat := ags.Platform{ClientID: agsClient, TokenURL: srv.URL + "/token", KeyID: keys.KeyID(&k.PublicKey), Key: k}
	p.SetLatency(50 * time.Millisecond)
	t0 := time.Now()
	o := (&ags.Client{}).PostScore(context.Background(), plat, li, ags.Score{UserID: "u", ScoreGiven: 1, ScoreMaximum: 1, Timestamp: time.Now()})
	if o.Status != ags.Sent {
		t.Fatalf("%+v", o)
	}
	if d := time.Since(t0); d < 100*time.Millisecond { // token + score
		t.Fatalf("latency not applied: %v", d)
	}
	resp, err := http.Get(srv.URL + "/scores.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scores.json: %v %v", resp, err)
	}
	resp.Body.Close()
	// Close wakes delayed handlers.
	p.SetLatency(time.Hour)
	done := make(chan struct{})
	go func() {
		(&ags.Client{HTTP: &http.Client{Timeout: 5 * time.Second}}).Token(context.Background(), plat, ags.ScopeLineItem)
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	p.Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not wake a delayed handler")
	}
	if _, err := p.Start("127.0.0.1:0"); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}
