package lmssim

import (
	"encoding/json"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// PlatformSandbox is Sandbox for LTI 1.3: a course page whose buttons start
// OpenID Connect logins into a hub's LTI13Authenticator, the Platform that
// answers them (authorization endpoint, JWKS, token endpoint, AGS, NRPS),
// and a grade book.
//
//	GET  /                   the course page
//	GET  /lti13/login        ?student=S&assignment=A: an auto-submitting login initiation form
//	GET  /lti13/login.json   the same form as {"action", "params"}, for test drivers
//	GET|POST /auth           the authorization endpoint (the hub's authorize_url)
//	GET  /jwks               the platform's public keys (the hub's jwks_endpoint)
//	POST /token              access tokens for ltigrade (client assertion checked)
//	     /lineitems...       AGS line items, scores, results
//	GET  /contexts/{id}/memberships   NRPS
//	GET  /gradebook          the grade book page
//	GET  /scores.json        every score and the request counts
//
// Like Sandbox it serves only its own host name or loopback names, and
// refuses cross-site navigations to a login initiation.
type PlatformSandbox struct {
	plat    *Platform
	baseURL string
	hosts   map[string]bool
}

// NewPlatformSandbox makes p the LTI 1.3 platform of b's course at baseURL
// (e.g. http://127.0.0.1:8765), launching into the hub at b.HubURL: p's
// base URL is set to baseURL, its tool to the hub's LTI13Authenticator
// routes, and its course to b's.
func NewPlatformSandbox(p *Platform, b LaunchBuilder, baseURL string) (*PlatformSandbox, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("sandbox base URL must be an http(s) URL without a path, such as http://127.0.0.1:8765")
	}
	if b.HubURL == "" {
		return nil, errors.New("no hub URL to launch into")
	}
	if _, err := parseHubURL(b.HubURL); err != nil {
		return nil, err
	}
	baseURL = strings.TrimRight(baseURL, "/")
	p.SetBaseURL(baseURL)
	p.SetTool(HubTool(b.HubURL))
	if err := p.SetCourse(b); err != nil {
		return nil, err
	}
	return &PlatformSandbox{plat: p, baseURL: baseURL, hosts: map[string]bool{strings.ToLower(u.Host): true}}, nil
}

// Platform is the platform behind the sandbox.
func (s *PlatformSandbox) Platform() *Platform { return s.plat }

// Close wakes the handlers the platform may be delaying.
func (s *PlatformSandbox) Close() error { return s.plat.Close() }

// Who names the student and assignment of a stored score.
func (s *PlatformSandbox) Who(sc Score) (student, assignment string, ok bool) {
	b, err := s.plat.Builder()
	if err != nil {
		return "", "", false
	}
	for _, a := range b.Course.Assignments {
		if id, _ := s.plat.LineItemFor(a.ID); id != sc.LineItemID {
			continue
		}
		for _, st := range b.Course.Students {
			if st.Sub() == sc.UserID {
				return st.Name, a.ID, true
			}
		}
	}
	return "", "", false
}

// Handler serves the sandbox.
func (s *PlatformSandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveIndex)
	mux.HandleFunc("GET /lti13/login", s.serveLogin)
	mux.HandleFunc("GET /lti13/login.json", s.serveLoginJSON)
	mux.HandleFunc("GET /gradebook", s.serveGradebook)
	s.plat.routes(mux)
	return checkHost(s.hosts, mux)
}

func (s *PlatformSandbox) login(w http.ResponseWriter, r *http.Request) (*FormPost, bool) {
	// As for LTI 1.1 launches: another site must not send a visitor
	// through a login (login CSRF).
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		http.Error(w, "launches start from the sandbox's own page", http.StatusForbidden)
		return nil, false
	}
	q := r.URL.Query()
	f, err := s.plat.LoginInitiation(q.Get("student"), q.Get("assignment"))
	if errors.Is(err, ErrUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		http.Error(w, "cannot build the login: "+err.Error(), http.StatusInternalServerError)
		return nil, false
	}
	return f, true
}

func (s *PlatformSandbox) serveLogin(w http.ResponseWriter, r *http.Request) {
	f, ok := s.login(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	type field struct{ Name, Value string }
	var fields []field
	for _, k := range slices.Sorted(maps.Keys(f.Params)) {
		fields = append(fields, field{k, f.Params[k]})
	}
	w.Header().Set("Cache-Control", "no-store")
	writePage(w, loginPage, map[string]any{
		"Action": f.Action, "Fields": fields, "Student": q.Get("student"), "Assignment": q.Get("assignment"),
		"Script": template.JS(autoSubmit),
	})
}

func (s *PlatformSandbox) serveLoginJSON(w http.ResponseWriter, r *http.Request) {
	f, ok := s.login(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(f)
}

type cell13 struct {
	Student, Assignment string
	LineItem            string
	Score               *Score
}

type row13 struct {
	Student Student
	Cells   []cell13
}

type link13 struct {
	Assignment Assignment
	Target     string
	LineItem   string
}

func (s *PlatformSandbox) view() (map[string]any, error) {
	b, err := s.plat.Builder()
	if err != nil {
		return nil, err
	}
	scores := map[[2]string]Score{}
	for _, sc := range s.plat.Scores() {
		scores[[2]string{sc.LineItemID, sc.UserID}] = sc
	}
	var links []link13
	for _, a := range b.Course.Assignments {
		t, _ := b.targetLinkURI(a)
		links = append(links, link13{Assignment: a, Target: t, LineItem: b.LineItemURLs[a.ID]})
	}
	var rows []row13
	for _, st := range b.Course.Students {
		r := row13{Student: st}
		for _, a := range b.Course.Assignments {
			id, _ := s.plat.LineItemFor(a.ID)
			c := cell13{Student: st.Name, Assignment: a.ID, LineItem: id}
			if sc, ok := scores[[2]string{id, st.Sub()}]; ok {
				c.Score = &sc
			}
			r.Cells = append(r.Cells, c)
		}
		rows = append(rows, r)
	}
	return map[string]any{
		"Course": b.Course, "RepoDir": RepoDir(b.Course.Repo), "HubURL": b.HubURL,
		"Issuer": b.Issuer, "ClientID": b.ClientID, "DeploymentID": b.DeploymentID,
		"AuthURL": s.plat.AuthURL(), "JWKSURL": s.plat.JWKSURL(), "TokenURL": s.plat.TokenURL(),
		"Links": links, "Rows": rows,
	}, nil
}

func (s *PlatformSandbox) serveIndex(w http.ResponseWriter, r *http.Request) {
	v, err := s.view()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writePage(w, indexPage13, v)
}

func (s *PlatformSandbox) serveGradebook(w http.ResponseWriter, r *http.Request) {
	v, err := s.view()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writePage(w, gradebookPage13, v)
}

var funcs13 = template.FuncMap{
	"when":  funcs["when"],
	"score": func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
}

var indexPage13 = template.Must(template.New("index13").Funcs(funcs13).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Course.Title}} — ltigrade sandbox (LTI 1.3)</title>` + pageStyle + `</head>
<body>
<h1>{{.Course.Title}} <small>({{.Course.Label}})</small></h1>
<p>A trial LTI 1.3 platform run by <code>ltigrade sandbox --lti13</code>. Each <em>launch</em> button starts an
OpenID Connect login at the hub <code>{{.HubURL}}</code>; the hub's LTI13Authenticator asks this platform for a
signed id_token, logs the student in, and nbgitpuller clones <code>{{.Course.Repo}}</code> into
<code>{{.RepoDir}}</code>. Scores come back through the Assignment and Grade Services.</p>
<p class="note">Launching logs this browser into the hub as that student. Keep the sandbox on loopback or behind
a firewall: anyone who can open this page can do the same.</p>
<table>
<tr><th>student</th>{{range .Course.Assignments}}<th>{{or .Title .ID}}<br><code>{{.Path}}</code></th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Student.Name}}</td>{{range .Cells}}<td><a class="button" href="/lti13/login?student={{.Student}}&amp;assignment={{.Assignment}}">launch</a>{{with .Score}} {{score .ScoreGiven}}/{{score .ScoreMaximum}}{{end}}</td>{{end}}</tr>
{{end}}</table>
<h2>The hub's settings</h2>
<pre>c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
c.LTI13Authenticator.issuer = "{{.Issuer}}"
c.LTI13Authenticator.client_id = ["{{.ClientID}}"]
c.LTI13Authenticator.authorize_url = "{{.AuthURL}}"
c.LTI13Authenticator.jwks_endpoint = "{{.JWKSURL}}"</pre>
<h2>ltigrade's <code>[[lti13.platforms]]</code> entry</h2>
<pre>issuer = "{{.Issuer}}"
client_id = "{{.ClientID}}"
token_url = "{{.TokenURL}}"</pre>
<h2>Resource links</h2>
<table><tr><th>assignment</th><th>target link URI (with the nbgitpuller link)</th><th>line item</th></tr>
{{range .Links}}<tr><td>{{.Assignment.ID}}</td><td><code>{{.Target}}</code></td><td><code>{{.LineItem}}</code>{{if .Assignment.NoLineItemClaim}} (not in the launch){{end}}</td></tr>
{{end}}</table>
<p><a href="/gradebook">Grade book</a> · <a href="/scores.json">scores.json</a> · deployment <code>{{.DeploymentID}}</code></p>
</body></html>
`))

var loginPage = template.Must(template.New("login13").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Launching {{.Assignment}} as {{.Student}}</title>` + pageStyle + `</head>
<body>
<h1>Launching {{.Assignment}} as {{.Student}}</h1>
<form id="launch" method="post" action="{{.Action}}" accept-charset="UTF-8">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit">Log in to the hub</button>
</form>
<p><a href="/">Back to the course</a></p>
<script>{{.Script}}</script>
</body></html>
`))

var gradebookPage13 = template.Must(template.New("gradebook13").Funcs(funcs13).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>Grade book — {{.Course.Title}}</title>` + pageStyle + `</head>
<body>
<h1>Grade book: {{.Course.Title}}</h1>
<table>
<tr><th>student</th><th>assignment</th><th>line item</th><th>score</th><th>comment</th><th>timestamp</th><th>writes</th></tr>
{{range .Rows}}{{range .Cells}}<tr><td>{{.Student}}</td><td>{{.Assignment}}</td><td>{{.LineItem}}</td>{{with .Score}}<td>{{score .ScoreGiven}}/{{score .ScoreMaximum}}</td><td>{{.Comment}}</td><td>{{.Timestamp}}</td><td>{{.Writes}}</td>{{else}}<td>–</td><td></td><td></td><td>0</td>{{end}}</tr>
{{end}}{{end}}</table>
<p class="note">Refreshes every 10 seconds. <a href="/">Back to the course</a> · <a href="/scores.json">scores.json</a></p>
</body></html>
`))
