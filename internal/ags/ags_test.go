package ags

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func key(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

func decodeSeg(t *testing.T, s string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAssertionStructure(t *testing.T) {
	k := key(t)
	now := time.Unix(1700000000, 0)
	a, err := Assertion("client-1", "https://lms.example/token", "kid-1", k, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	h := decodeSeg(t, parts[0])
	if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != "kid-1" || len(h) != 3 {
		t.Fatalf("header %v", h)
	}
	c := decodeSeg(t, parts[1])
	if c["iss"] != "client-1" || c["sub"] != "client-1" || c["aud"] != "https://lms.example/token" ||
		c["iat"] != float64(1700000000) || c["exp"] != float64(1700000060) || c["jti"] == "" {
		t.Fatalf("claims %v", c)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
	b, _ := Assertion("client-1", "https://lms.example/token", "kid-1", k, now)
	if decodeSeg(t, strings.Split(b, ".")[1])["jti"] == c["jti"] {
		t.Fatal("jti repeated")
	}
	if _, err := Assertion("", "a", "k", k, now); err == nil {
		t.Fatal("empty client id accepted")
	}
	if _, err := Assertion("c", "a", "k", nil, now); err == nil {
		t.Fatal("nil key accepted")
	}
}

func TestScoreURL(t *testing.T) {
	cases := []struct{ in, scores, results string }{
		{"https://lms.example/api/lti/courses/1/line_items/2", "https://lms.example/api/lti/courses/1/line_items/2/scores", "https://lms.example/api/lti/courses/1/line_items/2/results"},
		{"https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem?type_id=3", "https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=3", "https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem/results?type_id=3"},
		{"https://lms.example/li/7/", "https://lms.example/li/7/scores", "https://lms.example/li/7/results"},
		{"https://lms.example/li/7/?a=1&b=2#frag", "https://lms.example/li/7/scores?a=1&b=2", "https://lms.example/li/7/results?a=1&b=2"},
		{"https://lms.example/li/a%2Fb", "https://lms.example/li/a%2Fb/scores", "https://lms.example/li/a%2Fb/results"},
		{"http://127.0.0.1:8080/li/1", "http://127.0.0.1:8080/li/1/scores", "http://127.0.0.1:8080/li/1/results"},
	}
	for _, c := range cases {
		if got, err := ScoreURL(c.in); err != nil || got != c.scores {
			t.Errorf("ScoreURL(%q) = %q, %v; want %q", c.in, got, err, c.scores)
		}
		if got, err := ResultsURL(c.in); err != nil || got != c.results {
			t.Errorf("ResultsURL(%q) = %q, %v; want %q", c.in, got, err, c.results)
		}
	}
	for _, bad := range []string{"", "lineitem/5", "ftp://x/y", "http://lms.example/li/1", "https://user:pw@lms.example/li", "mailto:x@y"} {
		if _, err := ScoreURL(bad); err == nil {
			t.Errorf("ScoreURL(%q) accepted", bad)
		}
	}
}

// fakePlatform is an httptest platform whose score, result and line item
// handlers the tests replace.
type fakePlatform struct {
	srv        *httptest.Server
	tokens     atomic.Int32
	tokenReply func(w http.ResponseWriter, r *http.Request)
	score      func(w http.ResponseWriter, r *http.Request)
	get        func(w http.ResponseWriter, r *http.Request)
	lastScore  atomic.Value
}

const secretToken = "tok-SECRET-abc123"

func newFake(t *testing.T) *fakePlatform {
	f := &fakePlatform{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			n := f.tokens.Add(1)
			if f.tokenReply != nil {
				f.tokenReply(w, r)
				return
			}
			r.ParseForm()
			fmt.Fprintf(w, `{"access_token":"%s-%d","token_type":"bearer","expires_in":3600,"scope":%q}`, secretToken, n, r.PostForm.Get("scope"))
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/scores"):
			b, _ := io.ReadAll(r.Body)
			f.lastScore.Store(string(b))
			if f.score != nil {
				f.score(w, r)
				return
			}
			w.WriteHeader(200)
		default:
			if f.get != nil {
				f.get(w, r)
				return
			}
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePlatform) platform(t *testing.T) Platform {
	return Platform{Issuer: "https://moodle.example", ClientID: "cid", TokenURL: f.srv.URL + "/token", KeyID: "k1", Key: key(t)}
}

func testScore() Score {
	return Score{UserID: "u1", ScoreGiven: 7.5, ScoreMaximum: 10, Comment: "well done", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)}
}

func TestPostScoreBodyAndHeaders(t *testing.T) {
	f := newFake(t)
	var gotCT, gotAuth, gotQuery string
	f.score = func(w http.ResponseWriter, r *http.Request) {
		gotCT, gotAuth, gotQuery = r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.URL.RawQuery
		w.WriteHeader(204)
	}
	c := &Client{}
	o := c.PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1/lineitem?type_id=3", testScore())
	if o.Status != Sent || o.HTTPStatus != 204 {
		t.Fatalf("outcome %+v", o)
	}
	if gotCT != ScoreMediaType || !strings.HasPrefix(gotAuth, "Bearer "+secretToken) || gotQuery != "type_id=3" {
		t.Fatalf("ct %q auth %q query %q", gotCT, gotAuth, gotQuery)
	}
	var body map[string]any
	json.Unmarshal([]byte(f.lastScore.Load().(string)), &body)
	want := map[string]any{"userId": "u1", "scoreGiven": 7.5, "scoreMaximum": 10.0, "comment": "well done",
		"timestamp": "2026-01-02T03:04:05.123456Z", "activityProgress": "Completed", "gradingProgress": "FullyGraded"}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Fatalf("body %v\nwant %v", body, want)
	}
	// No comment: omitted. Canvas: extension.
	s := testScore()
	s.Comment = ""
	p := f.platform(t)
	p.Issuer = "https://canvas.instructure.com"
	if o := c.PostScore(context.Background(), p, f.srv.URL+"/li/1", s); o.Status != Sent {
		t.Fatal(o)
	}
	body = map[string]any{}
	json.Unmarshal([]byte(f.lastScore.Load().(string)), &body)
	if _, ok := body["comment"]; ok {
		t.Fatal("empty comment sent")
	}
	if fmt.Sprint(body[CanvasSubmissionExtension]) != "map[new_submission:false]" {
		t.Fatalf("canvas extension: %v", body)
	}
	if f.tokens.Load() != 2 { // different issuer: different cache key
		t.Fatalf("%d token requests", f.tokens.Load())
	}
}

func TestCanvasDetection(t *testing.T) {
	for iss, want := range map[string]bool{
		"https://canvas.instructure.com": true, "https://canvas.test.instructure.com": true,
		"https://canvas.myuni.edu": true, "https://moodle.example": false, "https://d2l.example": false,
	} {
		if got := (Platform{Issuer: iss}).IsCanvas(); got != want {
			t.Errorf("%s: %v", iss, got)
		}
	}
	if !(Platform{Issuer: "https://lms.example", Canvas: true}).IsCanvas() {
		t.Error("flag ignored")
	}
}

func TestPostScoreClassification(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		want       Status
		superseded bool
		msg        string
		ra         time.Duration
	}{
		{"200", 200, "", "", Sent, false, "accepted", 0},
		{"201", 201, "{}", "", Sent, false, "accepted", 0},
		{"202", 202, "", "", Sent, false, "accepted", 0},
		{"moodle 409", 409, `{"error":"conflict"}`, "", Superseded, true, "newer score", 0},
		{"canvas 400 ordering", 400, `{"errors":[{"message":"Score timestamp is before last updated timestamp"}]}`, "", Superseded, true, "newer score", 0},
		{"400 other", 400, `{"errors":{"type":"x","message":"ScoreMaximum must be greater than 0"}}`, "", Rejected, false, "ScoreMaximum must be greater", 0},
		{"404", 404, "<html><b>Not</b> found</html>", "", Rejected, false, "Not found", 0},
		{"403", 403, `{"error":"insufficient_scope"}`, "", Rejected, false, "insufficient_scope", 0},
		{"429", 429, "slow down", "7", Retry, false, "temporarily", 7 * time.Second},
		{"503", 503, "", "120", Retry, false, "temporarily", 2 * time.Minute},
		{"500 huge retry-after", 500, "", "99999999", Retry, false, "temporarily", MaxRetryAfter},
		{"302", 302, "", "", Rejected, false, "redirected", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.score = func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}
			o := (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore())
			if o.Status != tc.want || (o.Status == Superseded) != tc.superseded || !strings.Contains(o.Message, tc.msg) || o.RetryAfter != tc.ra || o.HTTPStatus != tc.status {
				t.Fatalf("outcome %+v", o)
			}
		})
	}
}

func TestPostScoreNetworkErrorAndInvalid(t *testing.T) {
	f := newFake(t)
	f.score = func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}
	o := (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore())
	if o.Status != Retry || o.HTTPStatus != 0 {
		t.Fatalf("outcome %+v", o)
	}
	for _, s := range []Score{{ScoreGiven: 1, ScoreMaximum: 1, Timestamp: time.Now()}, {UserID: "u", ScoreGiven: 1, ScoreMaximum: 0, Timestamp: time.Now()},
		{UserID: "u", ScoreGiven: -1, ScoreMaximum: 1, Timestamp: time.Now()}, {UserID: "u", ScoreGiven: 1, ScoreMaximum: 1}} {
		if o := (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", s); o.Status != Rejected {
			t.Errorf("%+v: %+v", s, o)
		}
	}
	if o := (&Client{}).PostScore(context.Background(), f.platform(t), "http://lms.example/li", testScore()); o.Status != Rejected {
		t.Errorf("plain http accepted: %+v", o)
	}
}

func TestPostScore401RefetchesOnce(t *testing.T) {
	f := newFake(t)
	var seen []string
	var mu sync.Mutex
	f.score = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Authorization"))
		if len(seen) == 1 {
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":"invalid_token %s"}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			return
		}
		w.WriteHeader(200)
	}
	c := &Client{}
	p := f.platform(t)
	o := c.PostScore(context.Background(), p, f.srv.URL+"/li/1", testScore())
	if o.Status != Retry || o.HTTPStatus != 401 || strings.Contains(o.Message, secretToken) {
		t.Fatalf("outcome %+v", o)
	}
	if f.tokens.Load() != 2 {
		t.Fatalf("%d token requests, want 2 (initial + one refetch)", f.tokens.Load())
	}
	o = c.PostScore(context.Background(), p, f.srv.URL+"/li/1", testScore())
	if o.Status != Sent || f.tokens.Load() != 2 || seen[0] == seen[1] {
		t.Fatalf("outcome %+v tokens %d seen %v", o, f.tokens.Load(), seen)
	}
}

func TestTokenErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   Status
		msg    string
	}{
		{400, `{"error":"invalid_client","error_description":"unknown kid"}`, Rejected, "invalid_client: unknown kid"},
		{401, `{"error":"invalid_grant"}`, Rejected, "invalid_grant"},
		{400, `{"error":"invalid_scope"}`, Rejected, "invalid_scope"},
		{429, `{"error":"slow_down"}`, Retry, "temporarily"},
		{502, `<html>bad gateway</html>`, Retry, "bad gateway"},
		{200, `{"nope":1}`, Retry, "without an access token"},
		{200, `{"access_token":"x","token_type":"mac"}`, Rejected, "unsupported token type"},
	}
	for _, tc := range cases {
		f := newFake(t)
		f.tokenReply = func(w http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			w.WriteHeader(tc.status)
			// Echo the assertion: it must not reach the message.
			io.WriteString(w, strings.Replace(tc.body, "unknown kid", "unknown kid in "+r.PostForm.Get("client_assertion"), 1))
		}
		o := (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore())
		if o.Status != tc.want || !strings.Contains(o.Message, tc.msg) || strings.Contains(o.Message, "eyJ") {
			t.Errorf("%d %s: %+v", tc.status, tc.body, o)
		}
		_, err := (&Client{}).Token(context.Background(), f.platform(t), ScopeScore)
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.want {
			t.Errorf("Token: %v", err)
		}
	}
	// Network failure at the token endpoint.
	f := newFake(t)
	p := f.platform(t)
	f.srv.Close()
	if o := (&Client{}).PostScore(context.Background(), p, f.srv.URL+"/li/1", testScore()); o.Status != Retry {
		t.Errorf("closed token endpoint: %+v", o)
	}
}

func TestTokenRequestAndCache(t *testing.T) {
	f := newFake(t)
	var form url.Values
	var ct string
	var mu sync.Mutex
	f.tokenReply = func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		form, ct = r.PostForm, r.Header.Get("Content-Type")
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, `{"access_token":"t1","token_type":"Bearer","expires_in":"600","scope":"s"}`)
	}
	now := time.Unix(1700000000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	c := &Client{Now: func() time.Time { return time.Unix(0, clock.Load()) }}
	p := f.platform(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Token(context.Background(), p, ScopeScore); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if f.tokens.Load() != 1 {
		t.Fatalf("%d token requests for concurrent callers", f.tokens.Load())
	}
	if ct != "application/x-www-form-urlencoded" || form.Get("grant_type") != "client_credentials" ||
		form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || form.Get("scope") != ScopeScore {
		t.Fatalf("form %v ct %q", form, ct)
	}
	claims := decodeSeg(t, strings.Split(form.Get("client_assertion"), ".")[1])
	if claims["aud"] != p.TokenURL {
		t.Fatalf("aud %v", claims["aud"])
	}
	tok, _ := c.Token(context.Background(), p, ScopeScore)
	if tok.Expiry != now.Add(540*time.Second) || tok.String() == "t1" || strings.Contains(fmt.Sprintf("%v %#v", tok, tok), "t1") {
		t.Fatalf("token %v", tok)
	}
	clock.Store(now.Add(539 * time.Second).UnixNano())
	c.Token(context.Background(), p, ScopeScore)
	if f.tokens.Load() != 1 {
		t.Fatal("refetched before refresh time")
	}
	clock.Store(now.Add(541 * time.Second).UnixNano())
	c.Token(context.Background(), p, ScopeScore)
	if f.tokens.Load() != 2 {
		t.Fatal("did not refresh 60 s before expiry")
	}
	// Different scopes: different token; Audience override.
	p.Audience = "https://api.brightspace.com/auth/token"
	c.Token(context.Background(), p, ScopeResultReadOnly)
	if f.tokens.Load() != 3 || decodeSeg(t, strings.Split(form.Get("client_assertion"), ".")[1])["aud"] != p.Audience {
		t.Fatal("audience or scope key wrong")
	}
	// Shared cache: a second Client reuses the token.
	shared := NewMemoryCache()
	c1, c2 := &Client{Cache: shared, Now: c.Now}, &Client{Cache: shared, Now: c.Now}
	c1.Token(context.Background(), p, ScopeScore)
	c2.Token(context.Background(), p, ScopeScore)
	if f.tokens.Load() != 4 {
		t.Fatalf("%d token requests with a shared cache", f.tokens.Load())
	}
	if CacheKey(p, []string{"b", "a"}) != CacheKey(p, []string{"a", "b", "a"}) {
		t.Fatal("cache key depends on scope order")
	}
}

func TestResultsPagingAndFilter(t *testing.T) {
	f := newFake(t)
	var accepts []string
	f.get = func(w http.ResponseWriter, r *http.Request) {
		accepts = append(accepts, r.Header.Get("Accept"))
		if r.URL.Path != "/li/1/lineitem/results" || r.URL.Query().Get("type_id") != "3" {
			http.NotFound(w, r)
			return
		}
		switch r.URL.Query().Get("p") {
		case "":
			if r.URL.Query().Get("user_id") != "u1" {
				t.Errorf("user_id %q", r.URL.RawQuery)
			}
			w.Header().Set("LINK", `<https://other.example/x>; rel="prev", </li/1/lineitem/results?type_id=3&user_id=u1&p=2>; rel="NEXT"`)
			io.WriteString(w, `[{"userId":"u1","resultScore":3,"resultMaximum":10},{"userId":"u2","resultScore":4}]`)
		case "2":
			io.WriteString(w, `[{"userId":"u1","resultScore":5,"comment":"c"}]`)
		}
	}
	rs, err := (&Client{}).Results(context.Background(), f.platform(t), f.srv.URL+"/li/1/lineitem?type_id=3", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || *rs[0].ResultScore != 3 || *rs[1].ResultScore != 5 || rs[1].Comment != "c" {
		t.Fatalf("results %+v", rs)
	}
	if accepts[0] != ResultContainerMediaType {
		t.Fatalf("accept %q", accepts[0])
	}
}

func TestPagingLimits(t *testing.T) {
	f := newFake(t)
	n := 0
	f.get = func(w http.ResponseWriter, r *http.Request) {
		n++
		switch r.URL.Query().Get("mode") {
		case "loop":
			w.Header().Set("Link", fmt.Sprintf(`<%s/li/1/results?mode=loop&i=%d>; rel=next`, f.srv.URL, n%2))
		case "endless":
			w.Header().Set("Link", fmt.Sprintf(`</li/1/results?mode=endless&i=%d>; rel="next"`, n))
		case "offsite":
			w.Header().Set("Link", `<https://evil.example/steal>; rel="next"`)
		case "big":
			io.WriteString(w, "["+strings.Repeat(`{"userId":"u"},`, 100000)+`{"userId":"u"}]`)
			return
		case "bad":
			io.WriteString(w, `{"not":"an array"}`)
			return
		}
		io.WriteString(w, `[]`)
	}
	c := &Client{MaxPages: 5}
	for mode, want := range map[string]string{"loop": "loops", "endless": "more than 5 pages", "offsite": "another host", "big": "larger than", "bad": "not a JSON array"} {
		_, err := c.Results(context.Background(), f.platform(t), f.srv.URL+"/li/1?mode="+mode, "")
		var e *Error
		if !errors.As(err, &e) || e.Status != Rejected || !strings.Contains(e.Message, want) {
			t.Errorf("%s: %v", mode, err)
		}
	}
}

func TestReadErrors(t *testing.T) {
	f := newFake(t)
	calls := 0
	f.get = func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch r.URL.Query().Get("mode") {
		case "401once":
			if calls == 1 {
				w.WriteHeader(401)
				return
			}
			io.WriteString(w, `[{"userId":"u"}]`)
		case "503":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(503)
		case "404":
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"no such line item `+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+`"}`)
		}
	}
	c := &Client{}
	p := f.platform(t)
	rs, err := c.Results(context.Background(), p, f.srv.URL+"/li/1?mode=401once", "")
	if err != nil || len(rs) != 1 || f.tokens.Load() != 2 {
		t.Fatalf("401 once: %v %v tokens %d", rs, err, f.tokens.Load())
	}
	_, err = c.Results(context.Background(), p, f.srv.URL+"/li/1?mode=503", "")
	var e *Error
	if !errors.As(err, &e) || e.Status != Retry || e.RetryAfter != 3*time.Second {
		t.Fatalf("503: %v", err)
	}
	_, err = c.Results(context.Background(), p, f.srv.URL+"/li/1?mode=404", "")
	if !errors.As(err, &e) || e.Status != Rejected || !strings.Contains(e.Message, "no such line item") || strings.Contains(e.Message, secretToken) {
		t.Fatalf("404: %v", err)
	}
}

func TestFindLineItem(t *testing.T) {
	f := newFake(t)
	f.get = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != LineItemContainerMediaType {
			t.Errorf("accept %q", r.Header.Get("Accept"))
		}
		// Ignores the resource_link_id filter, as some platforms do.
		if r.URL.Query().Get("page") == "" {
			w.Header().Add("Link", `</lineitems?page=2>; rel="next"`)
			io.WriteString(w, `[{"id":"https://lms.example/li/1","resourceLinkId":"rl-1"},{"id":"https://lms.example/li/2","resourceLinkId":"rl-2"}]`)
			return
		}
		io.WriteString(w, `[{"id":"https://lms.example/li/3","resourceLinkId":"rl-2"},{"id":"https://lms.example/li/4","resourceLinkId":"rl-4"}]`)
	}
	c := &Client{}
	p := f.platform(t)
	u, err := c.FindLineItem(context.Background(), p, f.srv.URL+"/lineitems", "rl-4")
	if err != nil || u != "https://lms.example/li/4" {
		t.Fatalf("%q %v", u, err)
	}
	_, err = c.FindLineItem(context.Background(), p, f.srv.URL+"/lineitems", "rl-9")
	var le *LineItemError
	if !errors.Is(err, ErrNoLineItem) || errors.Is(err, ErrAmbiguousLineItem) || !errors.As(err, &le) {
		t.Fatalf("none: %v", err)
	}
	_, err = c.FindLineItem(context.Background(), p, f.srv.URL+"/lineitems", "rl-2")
	if !errors.Is(err, ErrAmbiguousLineItem) || !errors.As(err, &le) || len(le.Matches) != 2 {
		t.Fatalf("ambiguous: %v", err)
	}
}

func TestNextLink(t *testing.T) {
	cases := map[string]string{
		`<https://a/x?p=2>; rel="next"`:                              "https://a/x?p=2",
		`<https://a/1>; rel="first", <https://a/3>; rel="next last"`: "https://a/3",
		`<https://a/x,y>; rel=next`:                                  "https://a/x,y",
		`<https://a/x>; rel="prev"`:                                  "",
		`<https://a/x>; title="next, page"; rel="last"`:              "",
	}
	for v, want := range cases {
		h := http.Header{}
		h.Set("link", v)
		if got := nextLink(h); got != want {
			t.Errorf("%s: %q, want %q", v, got, want)
		}
	}
}

func TestMessagesCarryNoSecrets(t *testing.T) {
	f := newFake(t)
	k := key(t)
	f.score = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		// A debugging platform echoing everything back.
		fmt.Fprintf(w, "bad request; auth was %s; access_token=%s; %s", r.Header.Get("Authorization"),
			strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), strings.Repeat("x", 500))
	}
	o := (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore())
	if o.Status != Rejected || strings.Contains(o.Message, secretToken) || strings.Contains(o.Message, k.D.String()[:20]) {
		t.Fatalf("message leaks: %q", o.Message)
	}
	if len([]rune(o.Message)) > maxMessage+1 {
		t.Fatalf("message too long: %d", len(o.Message))
	}
	if s := (&redactor{}).clean("x eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln y"); strings.Contains(s, "eyJ") {
		t.Fatalf("jwt not scrubbed: %q", s)
	}
}
