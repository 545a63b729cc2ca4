package lmssim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/launch"
)

const testHub = "http://127.0.0.1:8000/jupyter"

// course13 is testCourse with an instructor, custom parameters and a link
// whose launch names only the line item container.
func course13() Course {
	c := testCourse()
	c.Students = append(c.Students, Student{Name: "ina", UserID: "lms-ina", Email: "ina@uni.example", Roles: []string{"Instructor"}})
	c.Assignments[0].Custom = map[string]string{"due": "friday"}
	c.Assignments[1].NoLineItemClaim = true
	return c
}

// startCoursePlatform is a started platform launching into course13 at
// testHub, signing with the second test key.
func startCoursePlatform(t *testing.T) *Platform {
	t.Helper()
	p, _ := startPlatform(t)
	_, other := toolKeys(t)
	p.SetSigningKey(other)
	p.SetTool(HubTool(testHub))
	if err := p.SetCourse(LaunchBuilder{HubURL: testHub, Course: course13()}); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	formActionRE = regexp.MustCompile(`<form id="launch" method="post" action="([^"]*)"`)
	hiddenRE     = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// parseFormPost reads the auto-submitting form of a page, as a browser
// would submit it.
func parseFormPost(t *testing.T, page string) FormPost {
	t.Helper()
	m := formActionRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no launch form in\n%s", page)
	}
	f := FormPost{Action: html.UnescapeString(m[1]), Params: map[string]string{}}
	for _, h := range hiddenRE.FindAllStringSubmatch(page, -1) {
		f.Params[html.UnescapeString(h[1])] = html.UnescapeString(h[2])
	}
	return f
}

// authRequest is what ltiauthenticator's LTI13LoginInitHandler sends the
// browser to for a login initiation (handlers.py, authorize_redirect).
func authRequest(login *FormPost, nonce, state string) url.Values {
	return url.Values{
		"response_type": {"id_token"}, "scope": {"openid"}, "response_mode": {"form_post"}, "prompt": {"none"},
		"client_id": {login.Params["client_id"]}, "redirect_uri": {testHub + "/hub/lti13/oauth_callback"},
		"login_hint": {login.Params["login_hint"]}, "lti_message_hint": {login.Params["lti_message_hint"]},
		"nonce": {nonce}, "state": {state},
	}
}

// verifyIDToken checks an RS256 id_token against a JWKS as a tool does and
// returns its claims.
func verifyIDToken(t *testing.T, tok string, set keys.JWKSet) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q is not a compact JWS", tok)
	}
	enc := base64.RawURLEncoding
	hb, _ := enc.DecodeString(parts[0])
	var hdr struct{ Alg, Kid, Typ string }
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg != "RS256" || hdr.Kid == "" {
		t.Fatalf("id_token header %s: %v", hb, err)
	}
	var pub *rsa.PublicKey
	for _, k := range set.Keys {
		if k.Kid == hdr.Kid {
			n, _ := enc.DecodeString(k.N)
			e, _ := enc.DecodeString(k.E)
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
	}
	if pub == nil {
		t.Fatalf("the JWKS has no key %q", hdr.Kid)
	}
	sig, _ := enc.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	cb, _ := enc.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(cb, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func TestPlatformLoginFlow(t *testing.T) {
	p := startCoursePlatform(t)
	login, err := p.LoginInitiation("bob", "hw1")
	if err != nil {
		t.Fatal(err)
	}
	// 1. The login initiation names the launch; the hub redirects to /auth.
	if login.Action != testHub+"/hub/lti13/oauth_login" {
		t.Errorf("login initiation goes to %q", login.Action)
	}
	for k, want := range map[string]string{"iss": p.BaseURL(), "login_hint": "lms-user-17", "client_id": agsClient, "lti_deployment_id": "deployment-1"} {
		if got := login.Params[k]; got != want {
			t.Errorf("login initiation %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(login.Params["target_link_uri"], testHub+"/hub/lti13/oauth_login?next=%2Fjupyter%2Fhub%2Fuser-redirect%2Fgit-pull%3F") {
		t.Errorf("target_link_uri %q has no nbgitpuller next=", login.Params["target_link_uri"])
	}
	// 2. The authorization request (GET, as ltiauthenticator redirects).
	resp, err := http.Get(p.AuthURL() + "?" + authRequest(login, "nonce-1", "state-1").Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'sha256-") {
		t.Fatalf("/auth: %s (CSP %q)\n%s", resp.Status, resp.Header.Get("Content-Security-Policy"), body)
	}
	// 3. The page posts id_token and state to the redirect_uri.
	post := parseFormPost(t, string(body))
	if post.Action != testHub+"/hub/lti13/oauth_callback" || post.Params["state"] != "state-1" || len(post.Params) != 2 {
		t.Fatalf("form post %+v", post)
	}
	var set keys.JWKSet
	getJSON(t, p.JWKSURL(), &set)
	claims := verifyIDToken(t, post.Params["id_token"], set)
	now := time.Now().Unix()
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if claims["nonce"] != "nonce-1" || claims["iss"] != p.BaseURL() || claims["aud"] != agsClient || claims["sub"] != "lms-user-17" ||
		int64(iat) > now || int64(iat) < now-60 || int64(exp-iat) != int64(IDTokenTTL/time.Second) {
		t.Fatalf("id_token claims %v", claims)
	}
	if claims[ClaimMessageType] != "LtiResourceLinkRequest" || claims[ClaimVersion] != "1.3.0" || claims[ClaimDeploymentID] != "deployment-1" {
		t.Errorf("message claims %v", claims)
	}
	custom, _ := claims[ClaimCustom].(map[string]any)
	if custom["username"] != "bob" || custom["due"] != "friday" {
		t.Errorf("custom claim %v", custom)
	}
	nrps, _ := claims[ClaimNRPS].(map[string]any)
	if nrps["context_memberships_url"] != p.MembershipsURL("ds-100") || fmt.Sprint(nrps["service_versions"]) != "[2.0]" {
		t.Errorf("NRPS claim %v", nrps)
	}

	// What the hub's hook hands `ltigrade record`: the claims as
	// auth_state. ltigrade reads the signed next and the grade service.
	rec, _ := json.Marshal(map[string]any{"username": "bob", "next_url": "", "auth_state": claims})
	l, err := launch.Parse(rec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hw1, _ := p.LineItemFor("hw1")
	if l.Version != "1.3" || l.Platform != p.BaseURL() || l.ClientID != agsClient || l.LTIUserID != "lms-user-17" ||
		l.ResourceLinkID != "hw1" || l.ContextID != "ds-100" || l.ContextLabel != "DS100" || l.DeploymentID != "deployment-1" ||
		!l.NextSigned || l.Pull == nil || l.Pull.Opened != "ds100 materials+x.git/hw1/hw1.ipynb" ||
		l.LineItem != p.LineItemURL(hw1) || l.LineItems != p.LineItemsURL() || len(l.AGSScopes) != 4 ||
		l.Roles != RoleURI("Learner") {
		t.Fatalf("recorded %+v (pull %+v)", l, l.Pull)
	}

	// hw2's link names only the container; ina is an instructor with her own email.
	c2, err := p.Claims("ina", "hw2")
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := c2[ClaimAGS].(map[string]any)
	if _, has := ep["lineitem"]; has || ep["lineitems"] != p.LineItemsURL() {
		t.Errorf("hw2 AGS claim %v, want only lineitems", ep)
	}
	if c2["email"] != "ina@uni.example" || fmt.Sprint(c2[ClaimRoles]) != "["+RoleURI("Instructor")+"]" {
		t.Errorf("ina's claims %v", c2)
	}
	if st := p.Stats(); st.AuthRequests != 1 || st.IDTokensIssued != 1 || st.AuthRefusals != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The authorization endpoint signs only what a login it started asks for.
func TestPlatformAuthRefusals(t *testing.T) {
	p := startCoursePlatform(t)
	login, err := p.LoginInitiation("alice", "hw1")
	if err != nil {
		t.Fatal(err)
	}
	bobs, _ := p.LoginInitiation("bob", "hw2")
	forged := func(hint string) string {
		data, mac, _ := strings.Cut(hint, ".")
		js, _ := base64.RawURLEncoding.DecodeString(data)
		js = []byte(strings.Replace(string(js), `"a":"hw1"`, `"a":"hw2"`, 1))
		return base64.RawURLEncoding.EncodeToString(js) + "." + mac
	}
	for _, c := range []struct {
		name, key, value, want string
	}{
		{"implicit flow only", "response_type", "code", "response_type"},
		{"no openid scope", "scope", "profile", "openid"},
		{"no form post", "response_mode", "fragment", "form_post"},
		{"interactive prompt", "prompt", "login", "prompt"},
		{"another client", "client_id", "client-2", "client_id"},
		{"unregistered redirect", "redirect_uri", "http://evil.example/hub/lti13/oauth_callback", "redirect_uri"},
		{"no nonce", "nonce", "", "nonce"},
		{"forged hint", "lti_message_hint", forged(login.Params["lti_message_hint"]), "not issued by this platform"},
		{"another student's hint", "lti_message_hint", bobs.Params["lti_message_hint"], "login_hint"},
		{"no hint", "lti_message_hint", "", "not issued"},
	} {
		q := authRequest(login, "n", "s")
		q.Set(c.key, c.value)
		resp, err := http.PostForm(p.AuthURL(), q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.want) || strings.Contains(string(body), `name="id_token"`) {
			t.Errorf("%s: %s %q, want 400 naming %q", c.name, resp.Status, body, c.want)
		}
	}
	// The hint expires.
	p.mu.Lock()
	p.now = func() time.Time { return time.Now().Add(LoginHintTTL + time.Minute) }
	p.mu.Unlock()
	resp, err := http.PostForm(p.AuthURL(), authRequest(login, "n", "s"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "expired") {
		t.Errorf("expired hint: %s %s", resp.Status, body)
	}
	if st := p.Stats(); st.IDTokensIssued != 0 || st.AuthRefusals != 11 {
		t.Errorf("stats %+v", st)
	}
}

func TestLaunchBuilderClaimsNeedThePlatform(t *testing.T) {
	b := LaunchBuilder{HubURL: testHub, Course: course13()}
	if _, err := b.Claims("alice", "hw1"); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("claims without an issuer: %v", err)
	}
	b.Issuer, b.ClientID, b.DeploymentID = "https://lms.example.edu", "c", "d"
	c, err := b.Claims("alice", "hw1")
	if err != nil {
		t.Fatal(err)
	}
	if _, has := c[ClaimAGS]; has {
		t.Errorf("a builder without lineitems made an AGS claim: %v", c[ClaimAGS])
	}
	if _, has := c[ClaimNRPS]; has {
		t.Errorf("a builder without a memberships URL made an NRPS claim")
	}
	if c["email"] != "alice@"+EmailDomain || c["sub"] != "alice" {
		t.Errorf("claims %v", c)
	}
	if _, err := b.Claims("alice", "nope"); err == nil {
		t.Error("claims for an unknown assignment")
	}
	b.HubURL = ""
	if _, err := b.Claims("alice", "hw1"); err == nil {
		t.Error("claims without a hub for the target link")
	}
}

func TestVerifyJWT(t *testing.T) {
	p := startCoursePlatform(t)
	tok, err := p.IDToken("alice", "hw1", "n")
	if err != nil {
		t.Fatal(err)
	}
	set, _ := p.JWKS()
	c, err := VerifyJWT(tok, set)
	if err != nil || c["nonce"] != "n" || c["sub"] != "alice" {
		t.Fatalf("VerifyJWT: %v %v", c, err)
	}
	parts := strings.Split(tok, ".")
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(body), `"sub":"alice"`, `"sub":"bob"`, 1))) + "." + parts[2]
	if _, err := VerifyJWT(forged, set); err == nil {
		t.Error("a changed payload verified")
	}
	tool, _ := toolKeys(t)
	other := keys.JWKSet{Keys: []keys.JWK{keys.PublicJWK(&tool.PublicKey, set.Keys[0].Kid)}}
	if _, err := VerifyJWT(tok, other); err == nil {
		t.Error("verified with another key under the same kid")
	}
	if _, err := VerifyJWT(tok, keys.JWKSet{}); err == nil {
		t.Error("verified with an empty key set")
	}
}

// The LTI 1.1 launch carries the same roles and custom parameters.
func TestLaunchBuilderRolesAndCustom11(t *testing.T) {
	b := LaunchBuilder{Course: course13()}
	p, _, err := b.Params("ina", "hw1")
	if err != nil {
		t.Fatal(err)
	}
	if p["roles"] != "Instructor" || p["custom_due"] != "friday" {
		t.Errorf("params %v", p)
	}
	if p, _, _ := b.Params("alice", "hw2"); p["roles"] != "Learner" {
		t.Errorf("default role %q", p["roles"])
	}
	for _, c := range []struct {
		edit func(*Course)
		want string
	}{
		{func(c *Course) { c.Assignments[0].Custom = map[string]string{"bad-name": "x"} }, "custom parameter name"},
		{func(c *Course) { c.Assignments[0].Custom = map[string]string{"x": "a\nb"} }, "control character"},
		{func(c *Course) { c.Students[0].Roles = []string{"Learner,Instructor"} }, "must not contain"},
		{func(c *Course) { c.Assignments[0].ScoreMaximum = -1 }, "score maximum"},
	} {
		b := LaunchBuilder{Course: course13()}
		c.edit(&b.Course)
		if err := b.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate: %v, want %q", err, c.want)
		}
	}
}
