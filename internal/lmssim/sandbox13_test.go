package lmssim

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/keys"
)

func startPlatformSandbox(t *testing.T) (*PlatformSandbox, *httptest.Server, ags.Platform) {
	t.Helper()
	tool, other := toolKeys(t)
	kid := keys.KeyID(&tool.PublicKey)
	p := NewPlatform(agsClient, &tool.PublicKey, kid)
	p.SetSigningKey(other)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	sb, err := NewPlatformSandbox(p, LaunchBuilder{HubURL: testHub, Course: course13()}, base)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = sb.Handler()
	srv.Start()
	t.Cleanup(func() { srv.Close(); sb.Close() })
	return sb, srv, ags.Platform{Issuer: base, ClientID: agsClient, TokenURL: base + "/token", KeyID: kid, Key: tool}
}

func TestPlatformSandboxPages(t *testing.T) {
	_, srv, _ := startPlatformSandbox(t)
	code, _, index := get(t, srv.URL+"/")
	if code != 200 {
		t.Fatalf("index: %d", code)
	}
	for _, want := range []string{
		`href="/lti13/login?student=bob&amp;assignment=hw2"`,
		`c.LTI13Authenticator.issuer = "` + srv.URL + `"`,
		`c.LTI13Authenticator.client_id = ["` + agsClient + `"]`,
		`c.LTI13Authenticator.authorize_url = "` + srv.URL + `/auth"`,
		`c.LTI13Authenticator.jwks_endpoint = "` + srv.URL + `/jwks"`,
		`token_url = "` + srv.URL + `/token"`,
		testHub + `/hub/lti13/oauth_login?next=%2Fjupyter%2Fhub%2Fuser-redirect%2Fgit-pull`,
		`(not in the launch)`,
	} {
		if !strings.Contains(index, want) {
			t.Errorf("index lacks %s\n%s", want, index)
		}
	}
	code, hdr, page := get(t, srv.URL+"/lti13/login?student=alice&assignment=hw1")
	if code != 200 || !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'sha256-") {
		t.Fatalf("login page: %d %v", code, hdr)
	}
	f := parseFormPost(t, page)
	if f.Action != testHub+"/hub/lti13/oauth_login" || f.Params["login_hint"] != "alice" || f.Params["iss"] != srv.URL {
		t.Errorf("login form %+v", f)
	}
	var j FormPost
	getJSON(t, srv.URL+"/lti13/login.json?student=alice&assignment=hw1", &j)
	if j.Action != f.Action || j.Params["target_link_uri"] != f.Params["target_link_uri"] {
		t.Errorf("login.json %+v, page %+v", j, f)
	}
	for _, q := range []string{"student=zed&assignment=hw1", "student=alice&assignment=hw9"} {
		if code, _, _ := get(t, srv.URL+"/lti13/login.json?"+q); code != 404 {
			t.Errorf("login.json?%s: %d, want 404", q, code)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/lti13/login?student=alice&assignment=hw1", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login: %v %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign host: %v %v", resp.StatusCode, err)
	}
}

// A login through the sandbox, as the hub drives it, and a score sent back
// with the tool's key: the grade book and OnScore see it.
func TestPlatformSandboxLaunchAndScore(t *testing.T) {
	sb, srv, plat := startPlatformSandbox(t)
	got := make(chan Score, 1)
	sb.Platform().OnScore(func(s Score) { got <- s })
	var login FormPost
	getJSON(t, srv.URL+"/lti13/login.json?student=bob&assignment=hw2", &login)
	// The cross-site navigation from the hub to /auth is allowed.
	req, _ := http.NewRequest("GET", srv.URL+"/auth?"+authRequest(&login, "n-1", "st").Encode(), nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/auth: %s %s", resp.Status, body)
	}
	post := parseFormPost(t, string(body))
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	getJSON(t, srv.URL+"/jwks", &set)
	if len(set.Keys) != 1 || set.Keys[0]["kid"] == "" || set.Keys[0]["alg"] != "RS256" {
		t.Fatalf("jwks %v", set)
	}
	var js keys.JWKSet
	getJSON(t, srv.URL+"/jwks", &js)
	claims := verifyIDToken(t, post.Params["id_token"], js)
	ep, _ := claims[ClaimAGS].(map[string]any)
	lineitems, _ := ep["lineitems"].(string)
	// hw2's launch has no lineitem: find it as ltigrade does.
	c := &ags.Client{}
	li, err := c.FindLineItem(context.Background(), plat, lineitems, "hw2")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.PostScore(context.Background(), plat, li, ags.Score{UserID: claims["sub"].(string), ScoreGiven: 7, ScoreMaximum: 10, Comment: "ok", Timestamp: time.Now()}); o.Status != ags.Sent {
		t.Fatalf("score: %+v", o)
	}
	select {
	case s := <-got:
		if st, a, ok := sb.Who(s); !ok || st != "bob" || a != "hw2" {
			t.Errorf("Who(%+v) = %s %s %v", s, st, a, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnScore was not called")
	}
	_, _, gb := get(t, srv.URL+"/gradebook")
	if !strings.Contains(gb, "<td>bob</td><td>hw2</td><td>hw2</td><td>7/10</td><td>ok</td>") {
		t.Errorf("grade book:\n%s", gb)
	}
	var sj struct {
		Scores []Score       `json:"scores"`
		Stats  PlatformStats `json:"stats"`
	}
	getJSON(t, srv.URL+"/scores.json", &sj)
	if len(sj.Scores) != 1 || sj.Stats.IDTokensIssued != 1 || sj.Stats.ScoresStored != 1 {
		t.Errorf("scores.json %+v", sj)
	}
}
