package lmssim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sandbox is a small LMS for trying a hub before wiring a real LMS: a page
// of students and assignments whose buttons post signed LTI 1.1 launches to
// the hub, the Sim's outcome service for the grades that come back, and a
// grade book.
//
//	GET  /                 the course page
//	GET  /launch           ?student=S&assignment=A: an auto-submitting launch form
//	GET  /launch.json      the same launch as {"action", "params"}, for test drivers
//	POST /outcomes         LTI 1.1 Basic Outcomes (signature verified)
//	GET  /gradebook        the grade book page
//	GET  /grades.json      the grade book as JSON
//
// It never shows the consumer secret. Requests must name the sandbox (or a
// loopback name) in their Host header, so a web page using DNS rebinding
// cannot read signed launches from a sandbox on loopback, and browsers'
// cross-site navigations to a launch are refused.
type Sandbox struct {
	sim     *Sim
	b       LaunchBuilder
	baseURL string
	hosts   map[string]bool
}

// NewSandbox returns a sandbox for the course described by b, reachable at
// baseURL (e.g. http://127.0.0.1:8765), which is also where its outcome
// service is announced: b.OutcomeURL is set to baseURL+"/outcomes". Grades
// for sourcedIds that no launch of the course carries are refused, as a
// real LMS refuses them.
func NewSandbox(b LaunchBuilder, baseURL string) (*Sandbox, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("sandbox base URL must be an http(s) URL without a path, such as http://127.0.0.1:8765")
	}
	baseURL = strings.TrimRight(baseURL, "/")
	b.OutcomeURL = baseURL + "/outcomes"
	if b.HubURL == "" {
		return nil, errors.New("no hub URL to launch into")
	}
	if b.Key == "" || b.Secret == "" {
		return nil, errors.New("no consumer key and secret to sign with")
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	sim := New(map[string]string{b.Key: b.Secret})
	var roster []string
	for _, s := range b.Course.Students {
		for _, a := range b.Course.Assignments {
			roster = append(roster, b.sourcedID(s, a))
		}
	}
	sim.SetRoster(roster...)
	hosts := map[string]bool{strings.ToLower(u.Host): true}
	return &Sandbox{sim: sim, b: b, baseURL: baseURL, hosts: hosts}, nil
}

// Sim is the simulator behind the outcome service, for tests and for
// reading the grade book.
func (s *Sandbox) Sim() *Sim { return s.sim }

// Who names the student and assignment of a sourcedId the sandbox hands
// out.
func (s *Sandbox) Who(sourcedID string) (student, assignment string, ok bool) {
	for _, st := range s.b.Course.Students {
		for _, a := range s.b.Course.Assignments {
			if s.b.sourcedID(st, a) == sourcedID {
				return st.Name, a.ID, true
			}
		}
	}
	return "", "", false
}

// Builder returns the sandbox's launch builder (OutcomeURL set).
func (s *Sandbox) Builder() LaunchBuilder { return s.b }

// Close wakes the outcome handlers that the simulator may be delaying.
func (s *Sandbox) Close() error { return s.sim.Close() }

// Handler serves the sandbox.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveIndex)
	mux.HandleFunc("GET /launch", s.serveLaunch)
	mux.HandleFunc("GET /launch.json", s.serveLaunchJSON)
	mux.HandleFunc("GET /gradebook", s.serveGradebook)
	mux.HandleFunc("POST /outcomes", s.sim.outcomeHandler())
	mux.HandleFunc("GET /grades.json", s.sim.serveGrades)
	return s.checkHost(mux)
}

// checkHost refuses requests for another host name: see Sandbox.
func (s *Sandbox) checkHost(next http.Handler) http.Handler { return checkHost(s.hosts, next) }

// checkHost serves only requests for one of hosts or a loopback name, with
// headers that keep browsers from sniffing or leaking URLs.
func checkHost(hosts map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		if !hosts[host] && h != "localhost" && !isLoopbackIP(h) {
			http.Error(w, "unknown host; use the sandbox's own URL", http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func isLoopbackIP(h string) bool {
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// autoSubmit is the launch page's only script. The page's CSP allows it by
// hash, so nothing else can run there.
const autoSubmit = `document.getElementById("launch").submit();`

var pageCSP = func() string {
	sum := sha256.Sum256([]byte(autoSubmit))
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; frame-ancestors 'none'"
}()

func (s *Sandbox) page(w http.ResponseWriter, t *template.Template, data any) { writePage(w, t, data) }

// writePage serves an HTML page under the pages' CSP.
func writePage(w http.ResponseWriter, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Cache-Control", "no-store")
	if err := t.Execute(w, data); err != nil {
		// The header is out already; all we can do is stop.
		panic(http.ErrAbortHandler)
	}
}

type cell struct {
	Student, Assignment string
	SourcedID           string
	Grade               *Grade
}

type row struct {
	Student Student
	Cells   []cell
}

func (s *Sandbox) grid() []row {
	grades := map[string]Grade{}
	for _, g := range s.sim.Grades() {
		grades[g.SourcedID] = g
	}
	var rows []row
	for _, st := range s.b.Course.Students {
		r := row{Student: st}
		for _, a := range s.b.Course.Assignments {
			c := cell{Student: st.Name, Assignment: a.ID, SourcedID: s.b.sourcedID(st, a)}
			if g, ok := grades[c.SourcedID]; ok {
				c.Grade = &g
			}
			r.Cells = append(r.Cells, c)
		}
		rows = append(rows, r)
	}
	return rows
}

func (s *Sandbox) view() map[string]any {
	return map[string]any{
		"Course":     s.b.Course,
		"RepoDir":    RepoDir(s.b.Course.Repo),
		"HubURL":     s.b.HubURL,
		"Key":        s.b.Key,
		"OutcomeURL": s.b.OutcomeURL,
		"Rows":       s.grid(),
	}
}

func (s *Sandbox) serveIndex(w http.ResponseWriter, r *http.Request) {
	s.page(w, indexPage, s.view())
}

func (s *Sandbox) serveGradebook(w http.ResponseWriter, r *http.Request) {
	s.page(w, gradebookPage, s.view())
}

func (s *Sandbox) signed(w http.ResponseWriter, r *http.Request) (*SignedLaunch, bool) {
	// Another site must not be able to send a visitor through a launch and
	// so log them into the hub as a student (login CSRF). Browsers say
	// where a navigation came from; other clients send nothing.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		http.Error(w, "launches start from the sandbox's own page", http.StatusForbidden)
		return nil, false
	}
	q := r.URL.Query()
	l, err := s.b.Sign(q.Get("student"), q.Get("assignment"))
	if errors.Is(err, ErrUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		http.Error(w, "cannot build the launch: "+err.Error(), http.StatusInternalServerError)
		return nil, false
	}
	return l, true
}

func (s *Sandbox) serveLaunch(w http.ResponseWriter, r *http.Request) {
	l, ok := s.signed(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	type field struct{ Name, Value string }
	var fields []field
	for _, k := range slices.Sorted(maps.Keys(l.Params)) {
		fields = append(fields, field{k, l.Params[k]})
	}
	s.page(w, launchPage, map[string]any{
		"Action":     l.Action,
		"Fields":     fields,
		"Student":    q.Get("student"),
		"Assignment": q.Get("assignment"),
		"Course":     s.b.Course,
		"Signed":     signedAt(l).Format("15:04:05"),
		"Window":     LaunchWindow.String(),
		"Script":     template.JS(autoSubmit),
	})
}

func signedAt(l *SignedLaunch) time.Time {
	ts, _ := strconv.ParseInt(l.Params["oauth_timestamp"], 10, 64)
	return time.Unix(ts, 0)
}

func (s *Sandbox) serveLaunchJSON(w http.ResponseWriter, r *http.Request) {
	l, ok := s.signed(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(l)
}

const pageStyle = `<style>
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; }
code { background: #f4f4f4; padding: 0 .2em; }
.note { color: #555; }
a.button, button { background: #1565c0; color: #fff; border: 0; border-radius: 4px; padding: .3em .8em; text-decoration: none; cursor: pointer; }
</style>`

var funcs = template.FuncMap{
	"when": func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
}

var indexPage = template.Must(template.New("index").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Course.Title}} — ltigrade sandbox</title>` + pageStyle + `</head>
<body>
<h1>{{.Course.Title}} <small>({{.Course.Label}})</small></h1>
<p>A trial LMS run by <code>ltigrade sandbox</code>. Each <em>launch</em> button sends a signed LTI 1.1 launch
(consumer key <code>{{.Key}}</code>) to the hub at <code>{{.HubURL}}</code>, which logs the student in and lets
nbgitpuller clone <code>{{.Course.Repo}}</code> into <code>{{.RepoDir}}</code> in their home.
Grades come back to <code>{{.OutcomeURL}}</code>.</p>
<p class="note">Launching logs this browser into the hub as that student. Keep the sandbox on loopback or behind
a firewall: anyone who can open this page can do the same.</p>
<table>
<tr><th>student</th>{{range .Course.Assignments}}<th>{{or .Title .ID}}<br><code>{{.Path}}</code></th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Student.Name}}</td>{{range .Cells}}<td><a class="button" href="/launch?student={{.Student}}&amp;assignment={{.Assignment}}">launch</a>{{with .Grade}} score {{.Score}}{{end}}</td>{{end}}</tr>
{{end}}</table>
<p><a href="/gradebook">Grade book</a> · <a href="/grades.json">grades.json</a></p>
</body></html>
`))

var launchPage = template.Must(template.New("launch").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Launching {{.Assignment}} as {{.Student}}</title>` + pageStyle + `</head>
<body>
<h1>Launching {{.Assignment}} as {{.Student}}</h1>
<form id="launch" method="post" action="{{.Action}}" accept-charset="UTF-8">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit">Launch into the hub</button>
</form>
<p class="note">Signed at {{.Signed}}; the hub accepts it for {{.Window}}. If it says the timestamp is invalid,
<a href="/launch?student={{.Student}}&amp;assignment={{.Assignment}}">sign it again</a>.</p>
<p><a href="/">Back to the course</a></p>
<script>{{.Script}}</script>
</body></html>
`))

var gradebookPage = template.Must(template.New("gradebook").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>Grade book — {{.Course.Title}}</title>` + pageStyle + `</head>
<body>
<h1>Grade book: {{.Course.Title}}</h1>
<table>
<tr><th>student</th><th>assignment</th><th>score</th><th>comment</th><th>when</th><th>writes</th></tr>
{{range .Rows}}{{range .Cells}}<tr><td>{{.Student}}</td><td>{{.Assignment}}</td>{{with .Grade}}<td>{{.Score}}</td><td>{{.ResultDataText}}</td><td>{{when .Updated}}</td><td>{{.Writes}}</td>{{else}}<td>–</td><td></td><td></td><td>0</td>{{end}}</tr>
{{end}}{{end}}</table>
<p class="note">Refreshes every 10 seconds. <a href="/">Back to the course</a> · <a href="/grades.json">grades.json</a></p>
</body></html>
`))
