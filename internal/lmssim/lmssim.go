// Package lmssim is an in-process LTI 1.1 Basic Outcomes LMS (Sim, here)
// and LTI 1.3 platform (Platform: OIDC logins, AGS, NRPS; platform.go) for
// loopback use: `ltigrade demo`, `ltigrade sandbox`, CLI tests and
// benchmarks. Both run on one HTTP toolkit (kit.go): lifecycle, latency,
// faults queued per route (error statuses, Retry-After, delays, dropped
// connections) and request counts. Sim verifies OAuth like a real LMS
// (signature, body hash, timestamp window, nonce replay) and keeps a grade
// table; LaunchBuilder builds both versions' launches, and Sandbox and
// PlatformSandbox serve them as pages for a real hub.
//
// Sim verifies with lti11.Verify, so it cannot catch a bug that our signer
// and verifier share; testdata/lmsdouble does that with Python's oauthlib.
package lmssim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/lti11"
)

// MaxSkew is the timestamp window the simulator allows, Canvas's 90 minutes.
const MaxSkew = 90 * time.Minute

// maxRequestBody caps an outcome request; real ones are under 2 KiB.
const maxRequestBody = 1 << 20

// Grade is one row of the simulated grade book.
type Grade struct {
	SourcedID      string    `json:"sourced_id"`
	Score          string    `json:"score"`
	ResultDataText string    `json:"result_data_text,omitempty"`
	ResultDataURL  string    `json:"result_data_url,omitempty"`
	SubmittedAt    string    `json:"submitted_at,omitempty"`
	Updated        time.Time `json:"updated"`
	// Writes counts accepted replaceResult requests for this sourcedId since
	// the simulator started, including those before a deleteResult, so tests
	// can see duplicate deliveries.
	Writes int `json:"writes"`
}

// Sim is the simulated LMS. Its methods are safe for concurrent use.
type Sim struct {
	consumers map[string]string

	mu            sync.Mutex
	grades        map[string]Grade
	writes        map[string]int
	nonces        map[string]time.Time // key NUL nonce -> when it may be forgotten
	nonceAdds     int
	roster        map[string]bool // nil: every sourcedId is valid
	failureStatus int
	onGrade       func(Grade)
	msgSeq        int
	now           func() time.Time

	kit *server
}

// RouteOutcomes names the simulator's outcome service requests, for
// Fault.Route and counts.
const RouteOutcomes = "outcomes"

// New returns a simulator that accepts the given consumer keys (key -> secret).
func New(consumers map[string]string) *Sim {
	c := make(map[string]string, len(consumers))
	for k, v := range consumers {
		c[k] = v
	}
	return &Sim{
		consumers:     c,
		grades:        map[string]Grade{},
		writes:        map[string]int{},
		nonces:        map[string]time.Time{},
		failureStatus: http.StatusOK,
		now:           time.Now,
		kit:           newServer("simulator"),
	}
}

// Start serves the simulator on addr (e.g. "127.0.0.1:0") and returns its
// base URL; the outcome service URL is baseURL+"/outcomes".
func (s *Sim) Start(addr string) (baseURL string, err error) {
	return s.kit.start(addr, s.Handler())
}

// Close stops the server started by Start and wakes delayed handlers. It is
// safe to call more than once, and without Start.
func (s *Sim) Close() error { return s.kit.close() }

// Handler serves POST /outcomes and GET /grades.json, for use without Start
// (e.g. under httptest).
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /outcomes", s.outcomeHandler())
	mux.HandleFunc("GET /grades.json", s.serveGrades)
	return mux
}

// Grades returns the grade book sorted by sourcedId.
func (s *Sim) Grades() []Grade {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Grade, 0, len(s.grades))
	for _, g := range s.grades {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SourcedID < out[j].SourcedID })
	return out
}

// Grade returns the stored grade for one sourcedId.
func (s *Sim) Grade(sourcedID string) (Grade, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grades[sourcedID]
	return g, ok
}

// Requests counts outcome requests received, faulted ones included.
func (s *Sim) Requests() int { return s.kit.requests(RouteOutcomes) }

// Inject queues faults for the next requests.
func (s *Sim) Inject(f ...Fault) { s.kit.inject(f...) }

// SetLatency delays every outcome request by d.
func (s *Sim) SetLatency(d time.Duration) { s.kit.setLatency(d) }

// SetRoster limits valid sourcedIds to the given ones; others get the imsx
// failure "Invalid sourcedid", as Moodle answers for a dropped student.
// Called with no arguments it lifts the limit.
func (s *Sim) SetRoster(sourcedIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(sourcedIDs) == 0 {
		s.roster = nil
		return
	}
	s.roster = make(map[string]bool, len(sourcedIDs))
	for _, id := range sourcedIDs {
		s.roster[id] = true
	}
}

// OnGrade calls f with every grade stored by replaceResult, after the
// request's lock is released; `ltigrade sandbox` prints them.
func (s *Sim) OnGrade(f func(Grade)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onGrade = f
}

// SetFailureStatus sets the HTTP status sent with imsx failure responses:
// 200 (the default) behaves like Moodle and Blackboard, 422 like Canvas.
func (s *Sim) SetFailureStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failureStatus = code
}

func (s *Sim) serveGrades(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Grades())
}

// outcomeHandler is POST /outcomes with the kit's latency and faults.
func (s *Sim) outcomeHandler() http.HandlerFunc {
	return s.kit.route(RouteOutcomes, s.serveOutcome)
}

func (s *Sim) serveOutcome(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // the kit read it already, limit included
	if len(body) > maxRequestBody {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	var written *Grade
	status, resp := s.handle(r, body, &written)
	if written != nil {
		s.mu.Lock()
		f := s.onGrade
		s.mu.Unlock()
		if f != nil {
			f(*written)
		}
	}
	if status == http.StatusUnauthorized {
		http.Error(w, resp, status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, resp)
}

// handle verifies and executes one outcome request, returning the HTTP
// status and body, and the grade when it stored one. Authentication failures get plain text with 401, as
// Canvas answers them; everything after that gets a POX envelope.
func (s *Sim) handle(r *http.Request, body []byte, written **Grade) (int, string) {
	now := s.now()
	v, err := lti11.VerifyRequest(r, body, func(k string) (string, bool) {
		sec, ok := s.consumers[k]
		return sec, ok
	}, now, MaxSkew)
	if err != nil {
		switch {
		case errors.Is(err, lti11.ErrTimestamp):
			return http.StatusUnauthorized, "Expired timestamp"
		case errors.Is(err, lti11.ErrBodyHash):
			return http.StatusUnauthorized, "Invalid body hash"
		case errors.Is(err, lti11.ErrUnknownKey):
			return http.StatusUnauthorized, "Unknown consumer key"
		case errors.Is(err, lti11.ErrBadSignature):
			return http.StatusUnauthorized, "Invalid signature"
		}
		return http.StatusUnauthorized, "Invalid authorization header"
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	nk := v.Key + "\x00" + v.Nonce
	if exp, seen := s.nonces[nk]; seen && now.Before(exp) {
		return http.StatusUnauthorized, "Duplicate nonce detected"
	}
	// A nonce can be forgotten once its timestamp falls out of the window:
	// the timestamp check then refuses a replay anyway.
	s.nonces[nk] = v.Timestamp.Add(MaxSkew + time.Second)
	s.nonceAdds++
	if s.nonceAdds%512 == 0 {
		for k, exp := range s.nonces {
			if !now.Before(exp) {
				delete(s.nonces, k)
			}
		}
	}

	req, err := parseRequest(body)
	if err != nil {
		return s.failureStatus, s.envelope("", "", "failure", err.Error(), "")
	}
	fail := func(desc string) (int, string) {
		return s.failureStatus, s.envelope(req.messageID, req.op, "failure", desc, "")
	}
	if strings.TrimSpace(req.sourcedID) == "" {
		return fail("Missing sourcedid")
	}
	switch req.op {
	case "replaceResult", "readResult", "deleteResult":
	default:
		return s.failureStatus, s.envelope(req.messageID, req.op, "unsupported", req.op+" is not supported", "")
	}
	if s.roster != nil && !s.roster[req.sourcedID] {
		return fail("Invalid sourcedid")
	}

	switch req.op {
	case "readResult":
		g, ok := s.grades[req.sourcedID]
		score := "<readResultResponse><result><resultScore><language>en</language><textString>" + escape(g.Score) +
			"</textString></resultScore></result></readResultResponse>"
		desc := "Result read"
		if !ok {
			desc = "No result recorded"
		}
		return http.StatusOK, s.envelope(req.messageID, req.op, "success", desc, score)
	case "deleteResult":
		delete(s.grades, req.sourcedID)
		return http.StatusOK, s.envelope(req.messageID, req.op, "success", "Result deleted", "<deleteResultResponse/>")
	}

	if req.score == nil {
		return fail("Missing score")
	}
	score := strings.TrimSpace(*req.score)
	if !validScore(score) {
		return fail("Score must be a decimal between 0.0 and 1.0")
	}
	if req.submittedAt != "" {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(req.submittedAt))
		if err != nil {
			return fail("Invalid submittedAt timestamp")
		}
		if t.After(now.Add(time.Minute)) {
			return fail("submittedAt is in the future")
		}
	}
	s.writes[req.sourcedID]++
	g := Grade{
		SourcedID:      req.sourcedID,
		Score:          score,
		ResultDataText: req.text,
		ResultDataURL:  req.url,
		SubmittedAt:    req.submittedAt,
		Updated:        now,
		Writes:         s.writes[req.sourcedID],
	}
	s.grades[req.sourcedID] = g
	*written = &g
	return http.StatusOK, s.envelope(req.messageID, req.op, "success",
		fmt.Sprintf("Score for %s is now %s", req.sourcedID, score), "<replaceResultResponse/>")
}

var decimalRE = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)

// validScore accepts plain decimals in [0, 1]; exponents, signs, NaN and
// hex floats are refused although ParseFloat would take them, because the
// LTI spec asks for a decimal and an LMS may parse more strictly.
func validScore(s string) bool {
	if !decimalRE.MatchString(s) {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= 0 && f <= 1
}

type request struct {
	messageID, op, sourcedID string
	score                    *string
	text, url, submittedAt   string
}

type poxRequest struct {
	XMLName   xml.Name
	MessageID string `xml:"imsx_POXHeader>imsx_POXRequestHeaderInfo>imsx_messageIdentifier"`
	Body      struct {
		Ops []struct {
			XMLName     xml.Name
			SubmittedAt string `xml:"submissionDetails>submittedAt"`
			SourcedID   string `xml:"resultRecord>sourcedGUID>sourcedId"`
			Result      struct {
				Score *string `xml:"resultScore>textString"`
				Text  string  `xml:"resultData>text"`
				URL   string  `xml:"resultData>url"`
			} `xml:"resultRecord>result"`
		} `xml:",any"`
	} `xml:"imsx_POXBody"`
}

// parseRequest reads a request envelope. Tags match local names, so any
// namespace or prefix works; a DOCTYPE is refused outright.
func parseRequest(body []byte) (request, error) {
	if r, ok := parsePlainRequest(body); ok {
		return r, nil // it has no DOCTYPE: plain XML has none
	}
	return parseRequestXML(body)
}

// parseRequestXML is parseRequest through xml.Unmarshal.
func parseRequestXML(body []byte) (request, error) {
	if bytes.Contains(bytes.ToUpper(body), []byte("<!DOCTYPE")) {
		return request{}, errors.New("DOCTYPE is not allowed")
	}
	var p poxRequest
	if err := xml.Unmarshal(body, &p); err != nil {
		return request{}, errors.New("Invalid XML")
	}
	if p.XMLName.Local != "imsx_POXEnvelopeRequest" {
		return request{}, errors.New("Not an imsx_POXEnvelopeRequest")
	}
	if len(p.Body.Ops) != 1 {
		return request{}, errors.New("Expected exactly one operation")
	}
	op := p.Body.Ops[0]
	return request{
		messageID:   p.MessageID,
		op:          strings.TrimSuffix(op.XMLName.Local, "Request"),
		sourcedID:   op.SourcedID,
		score:       op.Result.Score,
		text:        op.Result.Text,
		url:         op.Result.URL,
		submittedAt: op.SubmittedAt,
	}, nil
}

// parsePlainRequest is parseRequest for a plain request envelope (what
// BuildPOX writes), read with lti11.ScanPlainXML: xml.Unmarshal was a fifth
// of the simulator's CPU in a batch benchmark, whose other process is the
// ltigrade being measured. It answers only for an envelope with one of
// each field at most and one operation, and FuzzParsePlainRequest holds
// it to xml.Unmarshal's reading; anything else goes to xml.Unmarshal.
func parsePlainRequest(body []byte) (request, bool) {
	var (
		r     request
		path  []string
		ops   int
		seen  = map[*string]bool{} // fields read so far
		into  *string              // the field the current text belongs to
		score string
		has   bool
	)
	fieldOf := func() *string {
		n := len(path)
		if n == 4 && path[1] == "imsx_POXHeader" && path[2] == "imsx_POXRequestHeaderInfo" && path[3] == "imsx_messageIdentifier" {
			return &r.messageID
		}
		if n < 3 || path[1] != "imsx_POXBody" {
			return nil
		}
		sub := strings.Join(path[3:], ">")
		switch sub {
		case "submissionDetails>submittedAt":
			return &r.submittedAt
		case "resultRecord>sourcedGUID>sourcedId":
			return &r.sourcedID
		case "resultRecord>result>resultScore>textString":
			has = true
			return &score
		case "resultRecord>result>resultData>text":
			return &r.text
		case "resultRecord>result>resultData>url":
			return &r.url
		}
		return nil
	}
	ok := lti11.ScanPlainXML(body, lti11.PlainEvents{
		Start: func(local string) bool {
			if into != nil {
				return false // an element inside a field: xml.Unmarshal's rules
			}
			path = append(path, local)
			switch {
			case len(path) == 1:
				if local != "imsx_POXEnvelopeRequest" {
					return false
				}
			case len(path) == 3 && path[1] == "imsx_POXBody":
				ops++
				r.op = strings.TrimSuffix(local, "Request")
			}
			if f := fieldOf(); f != nil {
				if seen[f] {
					return false // a repeated field: xml.Unmarshal's rules
				}
				seen[f] = true
				into = f
			}
			return true
		},
		Text: func(t string) {
			if into != nil {
				*into += t
			}
		},
		End: func() bool {
			into = nil
			path = path[:len(path)-1]
			return true
		},
	})
	if !ok || ops != 1 {
		return request{}, false
	}
	if has {
		r.score = &score
	}
	return r, true
}

func escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // a bytes.Buffer does not fail
	return b.String()
}

// envelope renders a response; the caller holds s.mu.
func (s *Sim) envelope(refID, op, codeMajor, desc, body string) string {
	s.msgSeq++
	severity := "status"
	if codeMajor != "success" {
		severity = "error"
	}
	if body == "" {
		body = "<" + escape(op) + "Response/>"
		if op == "" {
			body = ""
		}
	}
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<imsx_POXEnvelopeResponse xmlns="` + lti11.Namespace + `"><imsx_POXHeader><imsx_POXResponseHeaderInfo>` +
		`<imsx_version>V1.0</imsx_version><imsx_messageIdentifier>sim-` + strconv.Itoa(s.msgSeq) + `</imsx_messageIdentifier>` +
		`<imsx_statusInfo><imsx_codeMajor>` + codeMajor + `</imsx_codeMajor><imsx_severity>` + severity + `</imsx_severity>` +
		`<imsx_description>` + escape(desc) + `</imsx_description>` +
		`<imsx_messageRefIdentifier>` + escape(refID) + `</imsx_messageRefIdentifier>` +
		`<imsx_operationRefIdentifier>` + escape(op) + `</imsx_operationRefIdentifier>` +
		`</imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader>` +
		`<imsx_POXBody>` + body + `</imsx_POXBody></imsx_POXEnvelopeResponse>`
}
