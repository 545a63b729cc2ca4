package lmssim

// The LTI 1.3 launch of Platform: the OpenID Connect third-party initiated
// login (IMS Security Framework 1.0 §5.1) into a tool such as
// ltiauthenticator's LTI13Authenticator:
//
//  1. the browser posts the login initiation (LoginInitiation) to the
//     tool's login URL;
//  2. the tool redirects it to the platform's authorization endpoint (GET
//     or POST /auth) with its nonce, state and redirect_uri;
//  3. the platform answers with a page that posts a signed id_token (RS256,
//     the platform's own key, published at GET /jwks) and the state to the
//     redirect_uri.

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/keys"
)

// IDTokenTTL is how long an id_token is valid (its exp - iat).
// ltiauthenticator also refuses one issued more than 10 minutes ago.
const IDTokenTTL = 5 * time.Minute

// LoginHintTTL is how long a login initiation's lti_message_hint may be
// used at the authorization endpoint.
const LoginHintTTL = 10 * time.Minute

// Tool is the tool's side of the registration that logins need.
type Tool struct {
	LoginURL     string   // OIDC login initiation URL
	RedirectURIs []string // where the authorization endpoint may post id_tokens
}

// HubTool is the registration of a JupyterHub with ltiauthenticator's
// LTI13Authenticator at hubURL (base_url included): its login and callback
// routes.
func HubTool(hubURL string) Tool {
	h := strings.TrimRight(hubURL, "/")
	return Tool{LoginURL: h + "/hub/lti13/oauth_login", RedirectURIs: []string{h + "/hub/lti13/oauth_callback"}}
}

// FormPost is a form a browser posts: where, and the fields.
type FormPost struct {
	Action string            `json:"action"`
	Params map[string]string `json:"params"`
}

// SetTool sets the tool's login URL and redirect URIs.
func (p *Platform) SetTool(t Tool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.RedirectURIs = slices.Clone(t.RedirectURIs)
	p.tool = t
}

// SetSigningKey sets the platform's own key, which signs id_tokens; by
// default one is generated on first use.
func (p *Platform) SetSigningKey(k *rsa.PrivateKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.signer, p.signerKid = k, keys.KeyID(&k.PublicKey)
}

// signingKey returns the platform's key and kid, generating it first if
// needed.
func (p *Platform) signingKey() (*rsa.PrivateKey, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.signer == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, "", err
		}
		p.signer, p.signerKid = k, keys.KeyID(&k.PublicKey)
	}
	return p.signer, p.signerKid, nil
}

// JWKS is the platform's public key set, what GET /jwks serves.
func (p *Platform) JWKS() (keys.JWKSet, error) {
	k, kid, err := p.signingKey()
	if err != nil {
		return keys.JWKSet{}, err
	}
	return keys.JWKSet{Keys: []keys.JWK{keys.PublicJWK(&k.PublicKey, kid)}}, nil
}

// JWKSURL is where the platform serves its key set.
func (p *Platform) JWKSURL() string { return p.BaseURL() + "/jwks" }

// AuthURL is the authorization endpoint (the tool's authorize_url).
func (p *Platform) AuthURL() string { return p.BaseURL() + "/auth" }

// SetCourse makes b's course the one the platform launches into: every
// assignment gets a line item for its resource link (id = the assignment
// id, unless one for that link exists already), and the course's roster
// is its students unless SetMembers gave one. b.HubURL names the tool for
// the target links. Call it after Start or SetBaseURL.
func (p *Platform) SetCourse(b LaunchBuilder) error {
	b.Issuer, b.ClientID, b.DeploymentID = "x", "x", "x" // filled in per launch
	if err := b.Validate13(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := b.Course
	for _, a := range c.Assignments {
		link := or(a.LinkID, a.ID)
		if slices.ContainsFunc(p.items, func(it agsLineItem) bool { return it.resourceLinkID == link }) {
			continue
		}
		max := a.ScoreMaximum
		if max == 0 {
			max = 100
		}
		if slices.ContainsFunc(p.items, func(it agsLineItem) bool { return it.id == a.ID }) {
			p.createLineItem(LineItem{Label: or(a.Title, a.ID), ScoreMaximum: max, ResourceLinkID: link})
			continue
		}
		p.items = append(p.items, agsLineItem{id: a.ID, resourceLinkID: link, label: or(a.Title, a.ID), scoreMax: max})
	}
	if _, ok := p.members[c.ID]; !ok {
		var ms []Member
		for _, s := range c.Students {
			ms = append(ms, Member{UserID: s.Sub(), Name: or(s.FullName, s.Name), Email: s.email(),
				Roles: s.RoleURIs(), Status: "Active"})
		}
		p.members[c.ID] = ms
	}
	b.Issuer, b.ClientID, b.DeploymentID = "", "", ""
	p.course = &b
	return nil
}

// Builder returns the course's launch builder with the platform's side
// filled in: issuer, client id, deployment, the AGS and NRPS URLs.
func (p *Platform) Builder() (LaunchBuilder, error) {
	iss := p.Issuer()
	base := p.BaseURL()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.course == nil {
		return LaunchBuilder{}, errors.New("the platform has no course (SetCourse)")
	}
	b := *p.course
	b.Issuer, b.ClientID, b.DeploymentID = iss, p.clientID, p.deploy
	b.LineItemsURL = base + "/lineitems"
	b.MembershipsURL = base + "/contexts/" + url.PathEscape(b.Course.ID) + "/memberships"
	b.LineItemURLs = map[string]string{}
	for _, a := range b.Course.Assignments {
		link := or(a.LinkID, a.ID)
		for _, it := range p.items {
			if it.resourceLinkID == link {
				b.LineItemURLs[a.ID] = p.lineItemURL(it.id)
				break
			}
		}
	}
	return b, nil
}

// LineItemFor returns the id of the line item of an assignment's resource
// link.
func (p *Platform) LineItemFor(assignment string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.course == nil {
		return "", false
	}
	for _, a := range p.course.Course.Assignments {
		if a.ID != assignment {
			continue
		}
		for _, it := range p.items {
			if it.resourceLinkID == or(a.LinkID, a.ID) {
				return it.id, true
			}
		}
	}
	return "", false
}

// Claims returns the message claims of a student's launch of an
// assignment (LaunchBuilder.Claims with the platform's side).
func (p *Platform) Claims(student, assignment string) (map[string]any, error) {
	b, err := p.Builder()
	if err != nil {
		return nil, err
	}
	return b.Claims(student, assignment)
}

// IDToken signs a student's launch of an assignment for one login: the
// claims, nonce, iat and exp (IDTokenTTL later).
func (p *Platform) IDToken(student, assignment, nonce string) (string, error) {
	claims, err := p.Claims(student, assignment)
	if err != nil {
		return "", err
	}
	now := p.now()
	claims["nonce"] = nonce
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(IDTokenTTL).Unix()
	return p.signJWT(claims)
}

// signJWT makes a compact RS256 JWS of claims with the platform's key.
func (p *Platform) signJWT(claims map[string]any) (string, error) {
	k, kid, err := p.signingKey()
	if err != nil {
		return "", err
	}
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// messageHint is what lti_message_hint carries: which launch the login is
// for, until when. It is MACed with the platform's secret, so the
// authorization endpoint signs only launches the platform started.
type messageHint struct {
	Student    string `json:"s"`
	Assignment string `json:"a"`
	Expiry     int64  `json:"exp"`
}

func (p *Platform) mac(data string) string {
	p.mu.Lock()
	key := p.hintKey
	p.mu.Unlock()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Platform) makeHint(student, assignment string) string {
	js, _ := json.Marshal(messageHint{student, assignment, p.now().Add(LoginHintTTL).Unix()})
	data := base64.RawURLEncoding.EncodeToString(js)
	return data + "." + p.mac(data)
}

func (p *Platform) readHint(hint string) (messageHint, error) {
	data, mac, ok := strings.Cut(hint, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(p.mac(data))) {
		return messageHint{}, errors.New("lti_message_hint was not issued by this platform")
	}
	js, err := base64.RawURLEncoding.DecodeString(data)
	var h messageHint
	if err == nil {
		err = json.Unmarshal(js, &h)
	}
	if err != nil {
		return messageHint{}, errors.New("malformed lti_message_hint")
	}
	if p.now().Unix() > h.Expiry {
		return messageHint{}, errors.New("lti_message_hint expired; start the launch again")
	}
	return h, nil
}

// LoginInitiation is the form that starts a student's launch of an
// assignment: posted to the tool's login URL with iss, login_hint (the
// student's sub), target_link_uri (the nbgitpuller link in next=),
// lti_message_hint (the launch, MACed, valid LoginHintTTL), client_id and
// lti_deployment_id.
func (p *Platform) LoginInitiation(student, assignment string) (*FormPost, error) {
	b, err := p.Builder()
	if err != nil {
		return nil, err
	}
	s, a, err := b.find(student, assignment)
	if err != nil {
		return nil, err
	}
	target, err := b.targetLinkURI(a)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	login := p.tool.LoginURL
	p.mu.Unlock()
	if login == "" {
		return nil, errors.New("no tool login URL (SetTool)")
	}
	return &FormPost{Action: login, Params: map[string]string{
		"iss":               b.Issuer,
		"login_hint":        s.Sub(),
		"target_link_uri":   target,
		"lti_message_hint":  p.makeHint(s.Name, a.ID),
		"client_id":         b.ClientID,
		"lti_deployment_id": b.DeploymentID,
	}}, nil
}

// authError is a refused authorization request.
type authError string

func (e authError) Error() string { return string(e) }

// authorize checks an authentication request (IMS Security Framework 1.0
// §5.1.1.2) and returns the form that posts its id_token.
func (p *Platform) authorize(q map[string]string) (*FormPost, error) {
	switch {
	case q["response_type"] != "id_token":
		return nil, authError("response_type must be id_token")
	case !slices.Contains(strings.Fields(q["scope"]), "openid"):
		return nil, authError("scope must include openid")
	case q["response_mode"] != "form_post":
		return nil, authError("response_mode must be form_post")
	case q["prompt"] != "none":
		return nil, authError("prompt must be none")
	case q["client_id"] != p.clientID:
		return nil, authError(fmt.Sprintf("unknown client_id %q", q["client_id"]))
	case q["nonce"] == "":
		return nil, authError("nonce is required")
	}
	p.mu.Lock()
	registered := slices.Contains(p.tool.RedirectURIs, q["redirect_uri"])
	p.mu.Unlock()
	if !registered {
		return nil, authError(fmt.Sprintf("redirect_uri %q is not registered for the tool", q["redirect_uri"]))
	}
	h, err := p.readHint(q["lti_message_hint"])
	if err != nil {
		return nil, authError(err.Error())
	}
	b, err := p.Builder()
	if err != nil {
		return nil, err
	}
	s, _, err := b.find(h.Student, h.Assignment)
	if err != nil {
		return nil, authError(err.Error())
	}
	if q["login_hint"] != s.Sub() {
		return nil, authError("login_hint does not match the launch's user")
	}
	tok, err := p.IDToken(h.Student, h.Assignment, q["nonce"])
	if err != nil {
		return nil, err
	}
	params := map[string]string{"id_token": tok}
	if st, ok := q["state"]; ok {
		params["state"] = st
	}
	return &FormPost{Action: q["redirect_uri"], Params: params}, nil
}

// serveAuth is the authorization endpoint: the request's query and form
// (GET or POST), answered with a page that posts the id_token to the
// redirect_uri, or a 400 saying what is wrong.
func (p *Platform) serveAuth(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.refuseAuth(w, http.StatusBadRequest, "malformed request")
		return
	}
	q := map[string]string{}
	for k, vs := range r.Form {
		q[k] = vs[0]
	}
	f, err := p.authorize(q)
	var ae authError
	switch {
	case errors.As(err, &ae):
		p.refuseAuth(w, http.StatusBadRequest, ae.Error())
		return
	case err != nil:
		p.refuseAuth(w, http.StatusInternalServerError, err.Error())
		return
	}
	p.mu.Lock()
	p.stats.IDTokensIssued++
	p.mu.Unlock()
	type field struct{ Name, Value string }
	var fields []field
	for _, k := range slices.Sorted(maps.Keys(f.Params)) {
		fields = append(fields, field{k, f.Params[k]})
	}
	w.Header().Set("Cache-Control", "no-store")
	writePage(w, authPostPage, map[string]any{"Action": f.Action, "Fields": fields, "Script": template.JS(autoSubmit)})
}

func (p *Platform) refuseAuth(w http.ResponseWriter, code int, msg string) {
	p.mu.Lock()
	p.stats.AuthRefusals++
	p.lastError = "authorization: " + msg
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "authorization refused: "+msg, code)
}

func (p *Platform) serveJWKS(w http.ResponseWriter, r *http.Request) {
	set, err := p.JWKS()
	if err != nil {
		p.fail(w, http.StatusInternalServerError, "server_error", "no key")
		return
	}
	p.reply(w, http.StatusOK, "application/json", set)
}

var authPostPage = template.Must(template.New("auth").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Launching…</title>` + pageStyle + `</head>
<body>
<form id="launch" method="post" action="{{.Action}}" accept-charset="UTF-8">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit">Continue to the tool</button>
</form>
<script>{{.Script}}</script>
</body></html>
`))

// VerifyJWT checks a compact RS256 JWS (an id_token) against a key set,
// picking the key by the header's kid, and returns its claims. It checks
// the signature only: the claims' meaning is the caller's business.
func VerifyJWT(tok string, set keys.JWKSet) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, errors.New("bad base64url")
	}
	var hdr struct{ Alg, Kid string }
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg != "RS256" {
		return nil, errors.New("header must say alg RS256")
	}
	var pub *rsa.PublicKey
	for _, k := range set.Keys {
		if k.Kid != hdr.Kid || k.Kty != "RSA" {
			continue
		}
		n, err1 := enc.DecodeString(k.N)
		e, err2 := enc.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("key %q: bad n or e", k.Kid)
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if pub == nil {
		return nil, fmt.Errorf("no key %q in the key set", hdr.Kid)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("signature verification failed")
	}
	var claims map[string]any
	if err := json.Unmarshal(cb, &claims); err != nil {
		return nil, errors.New("claims are not a JSON object")
	}
	return claims, nil
}
