package lmssim

// An in-process LTI 1.3 Assignment and Grade Services platform, the LTI 1.3
// counterpart of Sim: `ltigrade demo --lti13`, tests and benchmarks. It
// verifies client assertions with Go's crypto/rsa, so like Sim it cannot
// catch a bug our signer and a Go verifier share; testdata/agsdouble (PyJWT)
// remains the independent check.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AGS scopes and media types the platform knows (the same values as
// internal/ags; repeated so the simulator does not trust the client's).
const (
	agsScopeBase             = "https://purl.imsglobal.org/spec/lti-ags/scope/"
	AGSScopeScore            = agsScopeBase + "score"
	AGSScopeLineItem         = agsScopeBase + "lineitem"
	AGSScopeLineItemReadOnly = agsScopeBase + "lineitem.readonly"
	AGSScopeResultReadOnly   = agsScopeBase + "result.readonly"

	agsScoreType       = "application/vnd.ims.lis.v1.score+json"
	agsResultsType     = "application/vnd.ims.lis.v2.resultcontainer+json"
	agsLineItemsType   = "application/vnd.ims.lis.v2.lineitemcontainer+json"
	agsLineItemType    = "application/vnd.ims.lis.v2.lineitem+json"
	agsAssertionType   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	agsAssertionLeeway = 5 * time.Second
	// agsMaxAssertionLife is the longest exp - iat accepted.
	agsMaxAssertionLife = 5 * time.Minute
)

// TokenTTL is the expires_in of the platform's access tokens.
const TokenTTL = 3600 * time.Second

// DefaultPageSize is how many entries one page of a line item or result
// container holds, unless SetPageSize changes it.
const DefaultPageSize = 10

// Score is one stored AGS score: the newest (by timestamp) for a line item
// and user.
type Score struct {
	LineItemID       string    `json:"lineitem_id"`
	UserID           string    `json:"userId"`
	ScoreGiven       float64   `json:"scoreGiven"`
	ScoreMaximum     float64   `json:"scoreMaximum"`
	Comment          string    `json:"comment,omitempty"`
	Timestamp        string    `json:"timestamp"` // as sent
	At               time.Time `json:"-"`         // Timestamp parsed
	ActivityProgress string    `json:"activityProgress"`
	GradingProgress  string    `json:"gradingProgress"`
	// CanvasNewSubmission is the Canvas submission extension's
	// new_submission, nil when the extension was not sent.
	CanvasNewSubmission *bool `json:"canvas_new_submission,omitempty"`
	// Writes counts accepted scores for this line item and user.
	Writes int `json:"writes"`
}

// PlatformStats counts requests by kind.
type PlatformStats struct {
	TokenRequests     int `json:"token_requests"`
	TokensIssued      int `json:"tokens_issued"`
	AssertionFailures int `json:"assertion_failures"`
	ScoreRequests     int `json:"score_requests"`
	ScoresStored      int `json:"scores_stored"`
	OrderingRefusals  int `json:"ordering_refusals"`
	ResultRequests    int `json:"result_requests"`
	LineItemRequests  int `json:"lineitem_requests"`
	Unauthorized      int `json:"unauthorized"`
}

type agsLineItem struct {
	id, resourceLinkID, label string
	scoreMax                  float64
}

type agsToken struct {
	expiry time.Time
	scopes map[string]bool
}

// Platform is the simulated LTI 1.3 platform: one tool registration
// (client id and public key), its token endpoint and AGS line items. Its
// methods are safe for concurrent use.
type Platform struct {
	clientID string
	pub      *rsa.PublicKey
	kid      string

	mu        sync.Mutex
	base      string
	items     []agsLineItem // in AddLineItem order
	tokens    map[string]agsToken
	jtis      map[string]time.Time // jti -> when it may be forgotten
	scores    map[[2]string]Score  // (line item id, user id)
	latency   time.Duration
	pageSize  int
	typeID    bool
	stats     PlatformStats
	lastError string
	now       func() time.Time

	srv       *http.Server
	done      chan struct{}
	closeOnce sync.Once
}

// NewPlatform returns a platform with one tool registration: clientID, whose
// client assertions must be RS256 signatures by pub's private key with
// header kid (any or no kid when kid is "").
func NewPlatform(clientID string, pub *rsa.PublicKey, kid string) *Platform {
	return &Platform{
		clientID: clientID,
		pub:      pub,
		kid:      kid,
		tokens:   map[string]agsToken{},
		jtis:     map[string]time.Time{},
		scores:   map[[2]string]Score{},
		pageSize: DefaultPageSize,
		typeID:   true,
		now:      time.Now,
		done:     make(chan struct{}),
	}
}

// Start serves the platform on addr (e.g. "127.0.0.1:0") and returns its
// base URL; the token URL (and the assertion audience) is baseURL+"/token".
func (p *Platform) Start(addr string) (baseURL string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return "", errors.New("platform already started")
	}
	select {
	case <-p.done:
		return "", errors.New("platform closed")
	default:
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	p.base = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln) // returns http.ErrServerClosed on Close
	return p.base, nil
}

// SetBaseURL sets the base URL for use with Handler under another server
// (e.g. httptest): line item URLs and the expected assertion audience
// derive from it. Start sets it.
func (p *Platform) SetBaseURL(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base = strings.TrimRight(u, "/")
}

// Close stops the server started by Start and wakes delayed handlers. Safe
// to call more than once, and without Start.
func (p *Platform) Close() error {
	p.closeOnce.Do(func() { close(p.done) })
	p.mu.Lock()
	srv := p.srv
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Handler serves the token endpoint and the AGS services:
//
//	POST /token                               client_credentials + RS256 client assertion
//	GET  /lineitems                           line item container, paged (Link rel="next"), ?resource_link_id=
//	GET  /lineitems/{id}/lineitem             one line item
//	POST /lineitems/{id}/lineitem/scores      a score; older or equal timestamp: 409
//	GET  /lineitems/{id}/lineitem/results     result container, paged, ?user_id=
//	GET  /scores.json                         every stored score and the request counts
func (p *Platform) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", p.serveToken)
	mux.HandleFunc("GET /lineitems", p.serveLineItems)
	mux.HandleFunc("GET /lineitems/{id}/lineitem", p.serveLineItem)
	mux.HandleFunc("POST /lineitems/{id}/lineitem/scores", p.serveScore)
	mux.HandleFunc("GET /lineitems/{id}/lineitem/results", p.serveResults)
	mux.HandleFunc("GET /scores.json", p.serveScoresJSON)
	return mux
}

// AddLineItem adds a line item (id: letters, digits, '.', '_', '-') for a
// resource link and returns its URL. URLs are Moodle-shaped,
// BASE/lineitems/ID/lineitem?type_id=3, unless SetMoodleURLs(false); so the
// base URL must be known (Start or SetBaseURL first). Adding an existing id
// changes its resource link.
func (p *Platform) AddLineItem(id, resourceLinkID string) (url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.items {
		if p.items[i].id == id {
			p.items[i].resourceLinkID = resourceLinkID
			return p.lineItemURL(id)
		}
	}
	p.items = append(p.items, agsLineItem{id: id, resourceLinkID: resourceLinkID, label: "Item " + id, scoreMax: 100})
	return p.lineItemURL(id)
}

// LineItemsURL is the line item container URL (the launch claim's
// lineitems).
func (p *Platform) LineItemsURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base + "/lineitems"
}

// TokenURL is the token endpoint, also the assertion audience.
func (p *Platform) TokenURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base + "/token"
}

// lineItemURL needs p.mu held.
func (p *Platform) lineItemURL(id string) string {
	u := p.base + "/lineitems/" + url.PathEscape(id) + "/lineitem"
	if p.typeID {
		u += "?type_id=3"
	}
	return u
}

// SetMoodleURLs chooses whether line item URLs carry Moodle's "?type_id=3"
// (the default), which clients must keep in the query when they add
// /scores or /results. Set it before AddLineItem.
func (p *Platform) SetMoodleURLs(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.typeID = on
}

// SetLatency delays every request by d.
func (p *Platform) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
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

// Scores returns every stored score, sorted by line item id then user id.
func (p *Platform) Scores() []Score {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Score, 0, len(p.scores))
	for _, s := range p.scores {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].LineItemID != out[j].LineItemID {
			return out[i].LineItemID < out[j].LineItemID
		}
		return out[i].UserID < out[j].UserID
	})
	return out
}

// Score returns the stored score of one user for one line item (by id).
func (p *Platform) Score(lineitemID, userID string) (Score, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.scores[[2]string{lineitemID, userID}]
	return s, ok
}

// TokenRequests counts POST /token requests, refused ones included.
func (p *Platform) TokenRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats.TokenRequests
}

// Stats returns the request counts.
func (p *Platform) Stats() PlatformStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// LastError is the error text of the latest refused request ("" if none),
// for tests to say why.
func (p *Platform) LastError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastError
}

// begin counts a request with count (under the lock), then waits out the
// latency. It reports false when the platform closed meanwhile.
func (p *Platform) begin(count func(*PlatformStats)) bool {
	p.mu.Lock()
	count(&p.stats)
	d := p.latency
	p.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.done:
		return false
	}
}

// baseFor is the base URL, or the request's own when none is set.
func (p *Platform) baseFor(r *http.Request) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.base != "" {
		return p.base
	}
	return "http://" + r.Host
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

func readLimited(r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	return data, err == nil && len(data) <= maxRequestBody
}

func mediaType(h string) string {
	mt, _, err := mime.ParseMediaType(h)
	if err != nil {
		return ""
	}
	return mt
}

// serveToken is the client-credentials grant with a JWT client assertion.
func (p *Platform) serveToken(w http.ResponseWriter, r *http.Request) {
	if !p.begin(func(s *PlatformStats) { s.TokenRequests++ }) {
		return
	}
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
		switch s {
		case AGSScopeScore, AGSScopeLineItem, AGSScopeLineItemReadOnly, AGSScopeResultReadOnly:
			scopes[s] = true
		default:
			p.fail(w, http.StatusBadRequest, "invalid_scope", "unknown scope")
			return
		}
	}
	if len(scopes) == 0 {
		p.fail(w, http.StatusBadRequest, "invalid_scope", "no scope")
		return
	}
	if err := p.checkAssertion(form.Get("client_assertion"), p.baseFor(r)+"/token"); err != nil {
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
	if p.kid != "" && header.Kid != p.kid {
		return errors.New("unknown kid")
	}
	if p.pub == nil {
		return errors.New("no key registered")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(p.pub, crypto.SHA256, sum[:], sig); err != nil {
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

// item finds a line item by the {id} path value; it writes a 404 when
// there is none.
func (p *Platform) item(w http.ResponseWriter, r *http.Request) (agsLineItem, bool) {
	id := r.PathValue("id")
	p.mu.Lock()
	for _, it := range p.items {
		if it.id == id {
			p.mu.Unlock()
			return it, true
		}
	}
	p.mu.Unlock()
	p.fail(w, http.StatusNotFound, "not_found", "no such line item")
	return agsLineItem{}, false
}

type lineItemJSON struct {
	ID             string  `json:"id"`
	Label          string  `json:"label"`
	ScoreMaximum   float64 `json:"scoreMaximum"`
	ResourceLinkID string  `json:"resourceLinkId,omitempty"`
}

func (p *Platform) itemJSON(it agsLineItem) lineItemJSON {
	return lineItemJSON{ID: p.lineItemURL(it.id), Label: it.label, ScoreMaximum: it.scoreMax, ResourceLinkID: it.resourceLinkID}
}

func (p *Platform) serveLineItems(w http.ResponseWriter, r *http.Request) {
	if !p.begin(func(s *PlatformStats) { s.LineItemRequests++ }) {
		return
	}
	if !p.bearer(w, r, AGSScopeLineItemReadOnly, AGSScopeLineItem) {
		return
	}
	rl := r.URL.Query().Get("resource_link_id")
	var rows []lineItemJSON
	p.mu.Lock()
	for _, it := range p.items {
		if rl == "" || it.resourceLinkID == rl {
			rows = append(rows, p.itemJSON(it))
		}
	}
	p.mu.Unlock()
	p.paged(w, r, rows, agsLineItemsType)
}

func (p *Platform) serveLineItem(w http.ResponseWriter, r *http.Request) {
	if !p.begin(func(s *PlatformStats) { s.LineItemRequests++ }) {
		return
	}
	if !p.bearer(w, r, AGSScopeLineItemReadOnly, AGSScopeLineItem) {
		return
	}
	it, ok := p.item(w, r)
	if !ok {
		return
	}
	p.mu.Lock()
	row := p.itemJSON(it)
	p.mu.Unlock()
	p.reply(w, http.StatusOK, agsLineItemType, row)
}

// paged answers one page (?page=N, from 1) of rows, with a Link rel="next"
// to the following page when there is one.
func paged[T any](p *Platform, w http.ResponseWriter, r *http.Request, rows []T, ctype string) {
	q := r.URL.Query()
	page := 1
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			p.fail(w, http.StatusBadRequest, "invalid_request", "bad page")
			return
		}
		page = n
	}
	p.mu.Lock()
	n := p.pageSize
	p.mu.Unlock()
	lo := min((page-1)*n, len(rows))
	hi := min(page*n, len(rows))
	if hi < len(rows) {
		q.Set("page", strconv.Itoa(page+1))
		w.Header().Add("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, p.baseFor(r), r.URL.Path, q.Encode()))
	}
	chunk := rows[lo:hi]
	if chunk == nil {
		chunk = []T{}
	}
	p.reply(w, http.StatusOK, ctype, chunk)
}

func (p *Platform) paged(w http.ResponseWriter, r *http.Request, rows []lineItemJSON, ctype string) {
	paged(p, w, r, rows, ctype)
}

type scoreIn struct {
	UserID           *string         `json:"userId"`
	ScoreGiven       *float64        `json:"scoreGiven"`
	ScoreMaximum     *float64        `json:"scoreMaximum"`
	Comment          *string         `json:"comment"`
	Timestamp        *string         `json:"timestamp"`
	ActivityProgress string          `json:"activityProgress"`
	GradingProgress  string          `json:"gradingProgress"`
	Canvas           json.RawMessage `json:"https://canvas.instructure.com/lti/submission"`
}

var (
	agsActivity = map[string]bool{"Initialized": true, "Started": true, "InProgress": true, "Submitted": true, "Completed": true}
	agsGrading  = map[string]bool{"FullyGraded": true, "Pending": true, "PendingManual": true, "Failed": true, "NotReady": true}
)

func (p *Platform) serveScore(w http.ResponseWriter, r *http.Request) {
	if !p.begin(func(s *PlatformStats) { s.ScoreRequests++ }) {
		return
	}
	body, ok := readLimited(r)
	if !ok {
		p.fail(w, http.StatusRequestEntityTooLarge, "invalid_request", "request too large")
		return
	}
	if !p.bearer(w, r, AGSScopeScore) {
		return
	}
	it, ok := p.item(w, r)
	if !ok {
		return
	}
	if mediaType(r.Header.Get("Content-Type")) != agsScoreType {
		p.fail(w, http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be "+agsScoreType)
		return
	}
	var in scoreIn
	if err := json.Unmarshal(body, &in); err != nil {
		p.fail(w, http.StatusBadRequest, "invalid_request", "body is not a score JSON object")
		return
	}
	var problems []string
	if in.UserID == nil || *in.UserID == "" {
		problems = append(problems, "userId")
	}
	if in.ScoreGiven == nil || *in.ScoreGiven < 0 || math.IsInf(*in.ScoreGiven, 0) {
		problems = append(problems, "scoreGiven")
	}
	if in.ScoreMaximum == nil || *in.ScoreMaximum <= 0 || math.IsInf(*in.ScoreMaximum, 0) {
		problems = append(problems, "scoreMaximum")
	}
	if !agsActivity[in.ActivityProgress] {
		problems = append(problems, "activityProgress")
	}
	if !agsGrading[in.GradingProgress] {
		problems = append(problems, "gradingProgress")
	}
	if in.Comment != nil && *in.Comment == "" {
		problems = append(problems, "comment")
	}
	var canvas *bool
	if len(in.Canvas) > 0 && string(in.Canvas) != "null" {
		var ext struct {
			NewSubmission *bool `json:"new_submission"`
		}
		if json.Unmarshal(in.Canvas, &ext) != nil || ext.NewSubmission == nil {
			problems = append(problems, "canvas submission extension")
		}
		canvas = ext.NewSubmission
	}
	var at time.Time
	if in.Timestamp == nil || !strings.Contains(*in.Timestamp, ".") {
		problems = append(problems, "timestamp (ISO 8601 with sub-second precision and offset)")
	} else if t, err := time.Parse(time.RFC3339Nano, *in.Timestamp); err != nil {
		problems = append(problems, "timestamp (ISO 8601 with sub-second precision and offset)")
	} else {
		at = t
	}
	if len(problems) > 0 {
		p.fail(w, http.StatusBadRequest, "invalid_request", "invalid score: "+strings.Join(problems, ", "))
		return
	}
	s := Score{LineItemID: it.id, UserID: *in.UserID, ScoreGiven: *in.ScoreGiven, ScoreMaximum: *in.ScoreMaximum,
		Timestamp: *in.Timestamp, At: at, ActivityProgress: in.ActivityProgress, GradingProgress: in.GradingProgress,
		CanvasNewSubmission: canvas}
	if in.Comment != nil {
		s.Comment = *in.Comment
	}
	key := [2]string{it.id, s.UserID}
	p.mu.Lock()
	old, had := p.scores[key]
	if had && !at.After(old.At) {
		// Moodle: 409 for an equal timestamp too.
		p.stats.OrderingRefusals++
		p.mu.Unlock()
		p.fail(w, http.StatusConflict, "conflict", "score timestamp not after the stored one")
		return
	}
	s.Writes = old.Writes + 1
	p.scores[key] = s
	p.stats.ScoresStored++
	base := p.base
	p.mu.Unlock()
	if base == "" {
		base = "http://" + r.Host
	}
	p.reply(w, http.StatusOK, "application/json", map[string]string{
		"resultUrl": base + "/lineitems/" + url.PathEscape(it.id) + "/lineitem/results/" + url.PathEscape(s.UserID)})
}

type resultJSON struct {
	ID            string  `json:"id"`
	ScoreOf       string  `json:"scoreOf"`
	UserID        string  `json:"userId"`
	ResultScore   float64 `json:"resultScore"`
	ResultMaximum float64 `json:"resultMaximum"`
	Comment       string  `json:"comment,omitempty"`
}

func (p *Platform) serveResults(w http.ResponseWriter, r *http.Request) {
	if !p.begin(func(s *PlatformStats) { s.ResultRequests++ }) {
		return
	}
	if !p.bearer(w, r, AGSScopeResultReadOnly) {
		return
	}
	it, ok := p.item(w, r)
	if !ok {
		return
	}
	user := r.URL.Query().Get("user_id")
	var rows []resultJSON
	p.mu.Lock()
	li := p.lineItemURL(it.id)
	base := p.base + "/lineitems/" + url.PathEscape(it.id) + "/lineitem/results/"
	for k, s := range p.scores {
		if k[0] == it.id && (user == "" || k[1] == user) {
			rows = append(rows, resultJSON{ID: base + url.PathEscape(s.UserID), ScoreOf: li, UserID: s.UserID,
				ResultScore: s.ScoreGiven, ResultMaximum: s.ScoreMaximum, Comment: s.Comment})
		}
	}
	p.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].UserID < rows[j].UserID })
	paged(p, w, r, rows, agsResultsType)
}

func (p *Platform) serveScoresJSON(w http.ResponseWriter, r *http.Request) {
	v := struct {
		Scores []Score        `json:"scores"`
		Stats  PlatformStats  `json:"stats"`
		Tokens map[string]int `json:"tokens"`
	}{Scores: p.Scores(), Stats: p.Stats()}
	p.mu.Lock()
	v.Tokens = map[string]int{"live": len(p.tokens)}
	p.mu.Unlock()
	p.reply(w, http.StatusOK, "application/json", v)
}
