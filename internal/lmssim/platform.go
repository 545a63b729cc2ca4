package lmssim

// An in-process LTI 1.3 platform, the LTI 1.3 counterpart of Sim: `ltigrade
// demo --lti13`, `ltigrade sandbox --lti13`, tests and benchmarks. It logs
// students in to a tool over OpenID Connect (oidc.go), and serves the
// Assignment and Grade Services (ags.go), Names and Role Provisioning
// (nrps.go) and the token endpoint those need (here).
//
// It verifies client assertions with Go's crypto/rsa, so like Sim it cannot
// catch a bug our signer and a Go verifier share; testdata/agsdouble
// (PyJWT) remains the independent check of ltigrade's assertions, and the
// hub's own ltiauthenticator checks the id_tokens this platform signs.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scopes and media types the platform knows (the same values as
// internal/ags; repeated so the simulator does not trust the client's).
const (
	agsScopeBase             = "https://purl.imsglobal.org/spec/lti-ags/scope/"
	AGSScopeScore            = agsScopeBase + "score"
	AGSScopeLineItem         = agsScopeBase + "lineitem"
	AGSScopeLineItemReadOnly = agsScopeBase + "lineitem.readonly"
	AGSScopeResultReadOnly   = agsScopeBase + "result.readonly"
	// NRPSScopeMembership lets a token read course memberships.
	NRPSScopeMembership = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"

	agsScoreType       = "application/vnd.ims.lis.v1.score+json"
	agsResultsType     = "application/vnd.ims.lis.v2.resultcontainer+json"
	agsLineItemsType   = "application/vnd.ims.lis.v2.lineitemcontainer+json"
	agsLineItemType    = "application/vnd.ims.lis.v2.lineitem+json"
	nrpsMembershipType = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
	agsAssertionType   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	agsAssertionLeeway = 5 * time.Second
	// agsMaxAssertionLife is the longest exp - iat accepted.
	agsMaxAssertionLife = 5 * time.Minute
)

// Route names of the platform's requests, for Fault.Route and
// Platform.Requests.
const (
	RouteToken       = "token"
	RouteLineItems   = "lineitems" // the line item container: list, create
	RouteLineItem    = "lineitem"  // one line item
	RouteScores      = "scores"
	RouteResults     = "results"
	RouteMemberships = "memberships"
	RouteAuth        = "auth" // the OpenID Connect authorization endpoint
	RouteJWKS        = "jwks" // the platform's public keys
)

// TokenTTL is the expires_in of the platform's access tokens.
const TokenTTL = 3600 * time.Second

// DefaultPageSize is how many entries one page of a container (line items,
// results, memberships) holds, unless SetPageSize changes it or the
// request asks for fewer with ?limit=.
const DefaultPageSize = 10

// PlatformStats counts requests by kind.
type PlatformStats struct {
	TokenRequests      int `json:"token_requests"`
	TokensIssued       int `json:"tokens_issued"`
	AssertionFailures  int `json:"assertion_failures"`
	ScoreRequests      int `json:"score_requests"`
	ScoresStored       int `json:"scores_stored"`
	OrderingRefusals   int `json:"ordering_refusals"`
	ResultRequests     int `json:"result_requests"`
	LineItemRequests   int `json:"lineitem_requests"`
	LineItemsCreated   int `json:"lineitems_created"`
	MembershipRequests int `json:"membership_requests"`
	Unauthorized       int `json:"unauthorized"`
	AuthRequests       int `json:"auth_requests"`
	IDTokensIssued     int `json:"id_tokens_issued"`
	AuthRefusals       int `json:"auth_refusals"`
}

type agsToken struct {
	expiry time.Time
	scopes map[string]bool
}

// Platform is the simulated LTI 1.3 platform: one tool registration
// (client id and the tool's public key), its token endpoint, AGS line items,
// scores and results, NRPS memberships, and, once SetTool and SetCourse
// have told it the tool's URLs and the course, OpenID Connect logins that
// launch students into the tool. Its methods are safe for concurrent use.
type Platform struct {
	clientID string
	kit      *server

	mu        sync.Mutex
	toolKeys  map[string]*rsa.PublicKey // kid → key; the key under "" takes any kid
	issuer    string                    // "" means the base URL
	deploy    string
	signer    *rsa.PrivateKey // the platform's own key, for id_tokens; made on first use
	signerKid string
	hintKey   []byte // MACs lti_message_hint
	tool      Tool
	course    *LaunchBuilder
	items     []agsLineItem // in AddLineItem order
	tokens    map[string]agsToken
	jtis      map[string]time.Time // jti -> when it may be forgotten
	scores    map[[2]string]Score  // (line item id, user id)
	members   map[string][]Member  // context id → roster
	onScore   func(Score)
	pageSize  int
	typeID    bool
	stats     PlatformStats
	lastError string
	now       func() time.Time
}

// NewPlatform returns a platform with one tool registration: clientID, whose
// client assertions must be RS256 signatures by pub's private key with
// header kid (any or no kid when kid is "").
func NewPlatform(clientID string, pub *rsa.PublicKey, kid string) *Platform {
	hk := make([]byte, 32)
	_, _ = rand.Read(hk) // crypto/rand.Read does not fail on supported platforms
	p := &Platform{
		clientID: clientID,
		kit:      newServer("platform"),
		toolKeys: map[string]*rsa.PublicKey{},
		deploy:   "deployment-1",
		hintKey:  hk,
		tokens:   map[string]agsToken{},
		jtis:     map[string]time.Time{},
		scores:   map[[2]string]Score{},
		members:  map[string][]Member{},
		pageSize: DefaultPageSize,
		typeID:   true,
		now:      time.Now,
	}
	if pub != nil {
		p.toolKeys[kid] = pub
	}
	return p
}

// AddToolKey registers one more public key of the tool under kid, as a
// tool's key set holds the old and the new key during a rotation.
func (p *Platform) AddToolKey(pub *rsa.PublicKey, kid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.toolKeys[kid] = pub
}

// ClientID is the tool registration's client id.
func (p *Platform) ClientID() string { return p.clientID }

// Start serves the platform on addr (e.g. "127.0.0.1:0") and returns its
// base URL; the token URL (and the assertion audience) is baseURL+"/token".
func (p *Platform) Start(addr string) (baseURL string, err error) {
	return p.kit.start(addr, p.Handler())
}

// SetBaseURL sets the base URL for use with Handler under another server
// (e.g. httptest): every URL the platform hands out, the issuer by
// default, and the expected assertion audience derive from it. Start sets
// it.
func (p *Platform) SetBaseURL(u string) { p.kit.setBaseURL(u) }

// BaseURL is the base URL set by Start or SetBaseURL.
func (p *Platform) BaseURL() string { return p.kit.baseURL() }

// Close stops the server started by Start and wakes delayed handlers. Safe
// to call more than once, and without Start.
func (p *Platform) Close() error { return p.kit.close() }

// Inject queues faults for the next requests (of Fault.Route, or any).
func (p *Platform) Inject(f ...Fault) { p.kit.inject(f...) }

// SetLatency delays every request by d.
func (p *Platform) SetLatency(d time.Duration) { p.kit.setLatency(d) }

// Requests counts the requests of one route (Route*), faulted ones
// included; "" counts all.
func (p *Platform) Requests(route string) int { return p.kit.requests(route) }

// Handler serves the platform:
//
//	POST /token                               client_credentials + RS256 client assertion
//	GET  /lineitems                           line item container, paged (Link rel="next"), ?resource_link_id= ?resource_id= ?tag= ?limit=
//	POST /lineitems                           create a line item
//	GET  /lineitems/{id}/lineitem             one line item
//	POST /lineitems/{id}/lineitem/scores      a score; older or equal timestamp: 409
//	GET  /lineitems/{id}/lineitem/results     result container, paged, ?user_id=
//	GET  /contexts/{id}/memberships           NRPS membership container, paged, ?role= ?limit=
//	GET  /auth, POST /auth                    OpenID Connect authorization: answers with the id_token form post
//	GET  /jwks                                the platform's public keys (for the tool's jwks_endpoint)
//	GET  /scores.json                         every stored score and the request counts
func (p *Platform) Handler() http.Handler {
	mux := http.NewServeMux()
	p.routes(mux)
	return mux
}

// routes adds the platform's routes to mux, so a sandbox can serve them
// beside its own pages.
func (p *Platform) routes(mux *http.ServeMux) {
	k := p.kit
	mux.HandleFunc("POST /token", k.route(RouteToken, p.serveToken))
	mux.HandleFunc("GET /lineitems", k.route(RouteLineItems, p.serveLineItems))
	mux.HandleFunc("POST /lineitems", k.route(RouteLineItems, p.serveCreateLineItem))
	mux.HandleFunc("GET /lineitems/{id}/lineitem", k.route(RouteLineItem, p.serveLineItem))
	mux.HandleFunc("POST /lineitems/{id}/lineitem/scores", k.route(RouteScores, p.serveScore))
	mux.HandleFunc("GET /lineitems/{id}/lineitem/results", k.route(RouteResults, p.serveResults))
	mux.HandleFunc("GET /contexts/{id}/memberships", k.route(RouteMemberships, p.serveMemberships))
	mux.HandleFunc("GET /auth", k.route(RouteAuth, p.serveAuth))
	mux.HandleFunc("POST /auth", k.route(RouteAuth, p.serveAuth))
	mux.HandleFunc("GET /jwks", k.route(RouteJWKS, p.serveJWKS))
	mux.HandleFunc("GET /scores.json", p.serveScoresJSON)
}

// TokenURL is the token endpoint, also the assertion audience.
func (p *Platform) TokenURL() string { return p.BaseURL() + "/token" }

// SetIssuer sets the iss of the platform's id_tokens; by default it is the
// base URL, as Moodle's is its site URL.
func (p *Platform) SetIssuer(iss string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issuer = iss
}

// Issuer is the iss of the platform's id_tokens.
func (p *Platform) Issuer() string {
	p.mu.Lock()
	iss := p.issuer
	p.mu.Unlock()
	if iss == "" {
		return p.BaseURL()
	}
	return iss
}

// SetDeploymentID sets the deployment id of launches ("deployment-1" by
// default).
func (p *Platform) SetDeploymentID(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deploy = id
}

// DeploymentID is the deployment id of launches.
func (p *Platform) DeploymentID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deploy
}

// SetPageSize sets the number of entries per container page (at least 1).
func (p *Platform) SetPageSize(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pageSize = max(1, n)
}

// ExpireTokens revokes every issued token; using one then gets a 401.
func (p *Platform) ExpireTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.tokens)
}

// TokenRequests counts POST /token requests, refused ones included.
func (p *Platform) TokenRequests() int { return p.Requests(RouteToken) }

// Stats returns the request counts.
func (p *Platform) Stats() PlatformStats {
	p.mu.Lock()
	st := p.stats
	p.mu.Unlock()
	st.TokenRequests = p.Requests(RouteToken)
	st.ScoreRequests = p.Requests(RouteScores)
	st.ResultRequests = p.Requests(RouteResults)
	st.LineItemRequests = p.Requests(RouteLineItems) + p.Requests(RouteLineItem)
	st.MembershipRequests = p.Requests(RouteMemberships)
	st.AuthRequests = p.Requests(RouteAuth)
	return st
}

// LastError is the error text of the latest refused request ("" if none),
// for tests to say why.
func (p *Platform) LastError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastError
}

func (p *Platform) reply(w http.ResponseWriter, code int, ctype string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code, data = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

func (p *Platform) fail(w http.ResponseWriter, code int, oauthErr, desc string) {
	p.mu.Lock()
	p.lastError = oauthErr + ": " + desc
	p.mu.Unlock()
	p.reply(w, code, "application/json", map[string]string{"error": oauthErr, "error_description": desc})
}

func mediaType(h string) string {
	mt, _, err := mime.ParseMediaType(h)
	if err != nil {
		return ""
	}
	return mt
}

// knownScopes are the scopes the token endpoint grants.
var knownScopes = map[string]bool{
	AGSScopeScore: true, AGSScopeLineItem: true, AGSScopeLineItemReadOnly: true, AGSScopeResultReadOnly: true,
	NRPSScopeMembership: true,
}

// serveToken is the client-credentials grant with a JWT client assertion.
func (p *Platform) serveToken(w http.ResponseWriter, r *http.Request) {
	body, ok := readLimited(r)
	if !ok {
		p.fail(w, http.StatusRequestEntityTooLarge, "invalid_request", "request too large")
		return
	}
	if mediaType(r.Header.Get("Content-Type")) != "application/x-www-form-urlencoded" {
		p.fail(w, http.StatusBadRequest, "invalid_request", "want a form body")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		p.fail(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	if form.Get("grant_type") != "client_credentials" {
		p.fail(w, http.StatusBadRequest, "unsupported_grant_type", "want client_credentials")
		return
	}
	if form.Get("client_assertion_type") != agsAssertionType {
		p.fail(w, http.StatusBadRequest, "invalid_request", "bad client_assertion_type")
		return
	}
	scopes := map[string]bool{}
	for _, s := range strings.Fields(form.Get("scope")) {
		if !knownScopes[s] {
			p.fail(w, http.StatusBadRequest, "invalid_scope", "unknown scope")
			return
		}
		scopes[s] = true
	}
	if len(scopes) == 0 {
		p.fail(w, http.StatusBadRequest, "invalid_scope", "no scope")
		return
	}
	if err := p.checkAssertion(form.Get("client_assertion"), p.kit.baseFor(r)+"/token"); err != nil {
		p.mu.Lock()
		p.stats.AssertionFailures++
		p.mu.Unlock()
		p.fail(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		p.fail(w, http.StatusInternalServerError, "server_error", "no randomness")
		return
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	granted := make([]string, 0, len(scopes))
	for s := range scopes {
		granted = append(granted, s)
	}
	sort.Strings(granted)
	p.mu.Lock()
	p.tokens[tok] = agsToken{expiry: p.now().Add(TokenTTL), scopes: scopes}
	p.stats.TokensIssued++
	p.mu.Unlock()
	p.reply(w, http.StatusOK, "application/json", map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int(TokenTTL / time.Second), "scope": strings.Join(granted, " ")})
}

// toolKey picks the registered key for a kid: the one under that kid, else
// the one registered for any kid.
func (p *Platform) toolKey(kid string) (*rsa.PublicKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.toolKeys) == 0 {
		return nil, errors.New("no key registered")
	}
	if k, ok := p.toolKeys[kid]; ok && kid != "" {
		return k, nil
	}
	if k, ok := p.toolKeys[""]; ok {
		return k, nil
	}
	return nil, errors.New("unknown kid")
}

// checkAssertion verifies an RS256 client assertion: alg and kid, the
// signature against the registered key, iss = sub = client id, aud, iat,
// exp (with a few seconds of leeway, lifetime at most 5 minutes) and a jti
// not seen before.
func (p *Platform) checkAssertion(assertion, aud string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("malformed assertion")
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return errors.New("malformed assertion: bad base64url")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return errors.New("malformed assertion header")
	}
	if header.Alg != "RS256" {
		return errors.New("alg must be RS256")
	}
	pub, err := p.toolKey(header.Kid)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature verification failed")
	}
	var c struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Iat *json.Number    `json:"iat"`
		Exp *json.Number    `json:"exp"`
		Jti string          `json:"jti"`
	}
	d := json.NewDecoder(strings.NewReader(string(cb)))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return errors.New("malformed assertion claims")
	}
	if c.Iss != p.clientID || c.Sub != p.clientID {
		return errors.New("iss and sub must be the client_id")
	}
	if !audienceHas(c.Aud, aud) {
		return fmt.Errorf("aud must be %s", aud)
	}
	if c.Iat == nil || c.Exp == nil || c.Jti == "" {
		return errors.New("iat, exp and jti are required")
	}
	iat, err1 := c.Iat.Int64()
	exp, err2 := c.Exp.Int64()
	if err1 != nil || err2 != nil {
		return errors.New("iat and exp must be integers")
	}
	now := p.now()
	leeway := int64(agsAssertionLeeway / time.Second)
	switch {
	case exp+leeway <= now.Unix():
		return errors.New("assertion expired")
	case iat-leeway > now.Unix():
		return errors.New("assertion issued in the future")
	case exp <= iat || exp-iat > int64(agsMaxAssertionLife/time.Second):
		return errors.New("assertion lifetime out of range")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for j, until := range p.jtis {
		if now.After(until) {
			delete(p.jtis, j)
		}
	}
	if _, seen := p.jtis[c.Jti]; seen {
		return errors.New("jti replayed")
	}
	p.jtis[c.Jti] = time.Unix(exp+leeway, 0)
	return nil
}

func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}

// bearer checks the request's access token for any of scopes; it writes
// the refusal and returns false when it is missing, unknown, expired or
// lacks the scope.
func (p *Platform) bearer(w http.ResponseWriter, r *http.Request, scopes ...string) bool {
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		p.mu.Lock()
		p.stats.Unauthorized++
		p.mu.Unlock()
		p.fail(w, http.StatusUnauthorized, "invalid_token", "missing bearer token")
		return false
	}
	p.mu.Lock()
	t, ok := p.tokens[strings.TrimSpace(auth[7:])]
	if !ok || !p.now().Before(t.expiry) {
		p.stats.Unauthorized++
		p.mu.Unlock()
		p.fail(w, http.StatusUnauthorized, "invalid_token", "unknown or expired token")
		return false
	}
	p.mu.Unlock()
	for _, s := range scopes {
		if t.scopes[s] {
			return true
		}
	}
	p.fail(w, http.StatusForbidden, "insufficient_scope", "token lacks "+strings.Join(scopes, " or "))
	return false
}

// page answers one page (?page=N from 1; ?limit=N entries, at most the
// page size) of rows with a Link rel="next" to the following page when
// there is one, and returns the chunk, or false after writing a 400.
func page[T any](p *Platform, w http.ResponseWriter, r *http.Request, rows []T) ([]T, bool) {
	q := r.URL.Query()
	num := 1
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			p.fail(w, http.StatusBadRequest, "invalid_request", "bad page")
			return nil, false
		}
		num = n
	}
	p.mu.Lock()
	size := p.pageSize
	p.mu.Unlock()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			p.fail(w, http.StatusBadRequest, "invalid_request", "bad limit")
			return nil, false
		}
		size = min(size, n)
	}
	lo := min((num-1)*size, len(rows))
	hi := min(num*size, len(rows))
	if hi < len(rows) {
		q.Set("page", strconv.Itoa(num+1))
		w.Header().Add("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, p.kit.baseFor(r), r.URL.Path, q.Encode()))
	}
	chunk := rows[lo:hi]
	if chunk == nil {
		chunk = []T{}
	}
	return chunk, true
}

// paged answers a page of rows as a JSON array.
func paged[T any](p *Platform, w http.ResponseWriter, r *http.Request, rows []T, ctype string) {
	if chunk, ok := page(p, w, r, rows); ok {
		p.reply(w, http.StatusOK, ctype, chunk)
	}
}
