package service

import (
	"context"
	"html/template"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/store"
)

// The status page: plain server-rendered HTML, a little CSS, no script, so
// it works without JavaScript and needs no build step. html/template
// escapes every LMS-provided string.
var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"deref": func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	},
	"dash": func(s string) string {
		if s == "" {
			return "–"
		}
		return s
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ltigrade{{if .Grader}}: grades{{else}}: my grades{{end}}</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1.2rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f4f4f4}.status-rejected{color:#a00;font-weight:600}.status-retry,.status-pending,.status-sending{color:#a60;font-weight:600}
.status-sent{color:#070}.note{color:#555}.msg{background:#eef6ee;border:1px solid #9c9;padding:.5rem;margin:1rem 0}
form{display:inline}button{font:inherit;padding:.1rem .6rem}
</style></head><body>
<p class="note">Signed in as <strong id="user">{{.User}}</strong> ({{.Role}}) · <a href="logout">log out</a></p>
{{if .Message}}<p class="msg" id="message">{{.Message}}</p>{{end}}
{{if .Grader}}
<h1>Grades passed back to the LMS</h1>
<h2>Passbacks <span class="note">(rejected and queued first)</span></h2>
{{if .Passbacks}}<table id="passbacks"><tr><th>ID</th><th>User</th><th>Notebook</th><th>Score</th><th>Status</th><th>Tries</th><th>Created</th><th>Message</th><th></th></tr>
{{range .Passbacks}}<tr data-passback="{{.ID}}"><td>{{.ID}}</td><td>{{.Username}}</td><td>{{.Notebook}}</td><td>{{.Score}}</td>
<td class="status-{{.Status}}">{{.Status}}</td><td>{{.Attempts}}</td><td>{{when .CreatedAt}}</td><td>{{dash .LastError}}</td>
<td>{{if or (eq .Status "retry") (eq .Status "pending")}}<form method="post" action="retry"><input type="hidden" name="_csrf" value="{{$.CSRF}}"><input type="hidden" name="id" value="{{.ID}}"><button type="submit" name="retry" id="retry-{{.ID}}">Retry</button></form>{{end}}</td></tr>
{{end}}</table>{{else}}<p>No scores journaled yet.</p>{{end}}
<h2>Sessions by course and assignment</h2>
{{range .Courses}}<h3>{{.Name}}</h3>
{{range .Assignments}}<table class="sessions"><tr><th colspan="5">{{dash .Title}} <span class="note">({{.ID}})</span></th></tr>
<tr><th>User</th><th>Opened</th><th>LTI</th><th>Launched</th><th>Session</th></tr>
{{range .Sessions}}<tr><td>{{.Username}}</td><td>{{dash .Opened}}</td><td>{{.Version}}</td><td>{{when .LaunchedAt}}</td><td>{{.ID}}</td></tr>{{end}}
</table>{{end}}{{else}}<p>No launches recorded yet.</p>{{end}}
{{else}}
<h1>My assignments</h1>
{{if .Mine}}<table id="mine"><tr><th>Course</th><th>Assignment</th><th>Opened</th><th>Launched</th><th>Latest grade</th><th>Delivered to the LMS</th></tr>
{{range .Mine}}<tr><td>{{dash .Course}}</td><td>{{dash .Assignment}}</td><td>{{dash .Opened}}</td><td>{{when .Launched}}</td><td>{{dash .Score}}</td><td class="status-{{.Status}}">{{.Delivery}}</td></tr>{{end}}
</table>{{else}}<p>No launches of yours are recorded yet: open an assignment from the LMS.</p>{{end}}
{{if .Gradable}}<h2>Submit for grading</h2>
{{range .Gradable}}<form method="post" action="submit" enctype="multipart/form-data" class="submit">
<input type="hidden" name="_csrf" value="{{$.CSRF}}"><input type="hidden" name="path" value="{{.Path}}">
<label>{{.Assignment}} — {{.Path}}: <input type="file" name="notebook" accept=".ipynb" required></label>
<button type="submit" id="submit-{{.Index}}">Submit</button></form><br>
{{end}}{{end}}
{{end}}
{{if .Submissions}}<h2>Submissions</h2>
<table id="submissions"><tr><th>ID</th>{{if .Grader}}<th>User</th>{{end}}<th>Assignment</th><th>Notebook</th><th>State</th><th>Score</th><th>Submitted</th><th>Why / output</th></tr>
{{range .Submissions}}<tr data-submission="{{.ID}}"><td>{{.ID}}</td>{{if $.Grader}}<td>{{.Username}}</td>{{end}}<td>{{dash .Assignment}}</td><td>{{.Path}}</td>
<td class="state-{{.State}}">{{.State}}</td><td>{{if .Score}}{{deref .Score}} / {{deref .OutOf}}{{else}}–{{end}}</td><td>{{when .CreatedAt}}</td>
<td>{{if eq .State "failed"}}{{.Reason}}<pre>{{.Output}}</pre>{{end}}</td></tr>{{end}}
</table>{{end}}
</body></html>
`))

var errTmpl = template.Must(template.New("err").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ltigrade: {{.Status}}</title></head>
<body style="font:15px system-ui,sans-serif;margin:2rem"><h1>{{.Status}}</h1><p id="error">{{.Msg}}</p>{{if .Hint}}<p>{{.Hint}}</p>{{end}}</body></html>
`))

func (s *Server) pageError(w http.ResponseWriter, r *http.Request, status int, msg, hint string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	errTmpl.Execute(w, map[string]string{"Status": strconv.Itoa(status) + " " + http.StatusText(status), "Msg": msg, "Hint": hint})
}

type pageCourse struct {
	Name        string
	Assignments []pageAssignment
}

type pageAssignment struct {
	Title, ID string
	Sessions  []store.Session
}

type gradableLaunch struct {
	Assignment, Path string
	Index            int
}

type mineRow struct {
	Course, Assignment, Opened string
	Launched                   time.Time
	Score, Status, Delivery    string
}

var statusOrder = map[string]int{store.StatusRejected: 0, store.StatusRetry: 1, store.StatusPending: 2, store.StatusSending: 3,
	store.StatusSent: 4, store.StatusSuperseded: 5}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	id := IdentityOf(r.Context())
	data := map[string]any{"User": id.User.Name, "Role": string(id.Role), "Grader": id.Role.CanGrade(),
		"CSRF": id.CSRF}
	ctx := r.Context()
	f := store.SessionFilter{}
	pf := store.PassbackFilter{Limit: 2000}
	if !id.Role.CanGrade() {
		f.Username, pf.Username = id.User.Name, id.User.Name
	}
	sessions, err := s.Grader.Sessions(ctx, f)
	if err != nil {
		s.pageError(w, r, http.StatusInternalServerError, err.Error(), "")
		return
	}
	passbacks, err := s.Grader.Passbacks(ctx, pf)
	if err != nil {
		s.pageError(w, r, http.StatusInternalServerError, err.Error(), "")
		return
	}
	if id.Role.CanGrade() {
		sort.SliceStable(passbacks, func(i, j int) bool { return statusOrder[passbacks[i].Status] < statusOrder[passbacks[j].Status] })
		data["Passbacks"] = passbacks
		data["Courses"] = byCourse(sessions)
		// After a retry: the row's state now, from the store (the page
		// never echoes text from its URL).
		if rid, err := strconv.ParseInt(r.URL.Query().Get("retried"), 10, 64); err == nil {
			msg := "no passback " + strconv.FormatInt(rid, 10)
			for _, p := range passbacks {
				if p.ID == rid {
					msg = "passback " + strconv.FormatInt(rid, 10) + ": " + p.Status
					if p.LastError != "" && p.Status != store.StatusSent {
						msg += " (" + p.LastError + ")"
					}
				}
			}
			data["Message"] = msg
		}
	} else {
		data["Mine"] = mine(sessions, passbacks)
		var gradable []gradableLaunch
		for i := range sessions {
			ss := &sessions[i]
			if ss.OpenedFile && grade.MatchGrader(s.Grader.Config.Graders, ss, ss.Opened) >= 0 {
				gradable = append(gradable, gradableLaunch{Assignment: ss.ResourceLinkTitle, Path: ss.Opened, Index: len(gradable)})
			}
		}
		data["Gradable"] = gradable
	}
	subs, err := s.Grader.Submissions(ctx, store.SubmissionFilter{Username: f.Username, Limit: 200})
	if err != nil {
		s.pageError(w, r, http.StatusInternalServerError, err.Error(), "")
		return
	}
	data["Submissions"] = subs
	if sid, err := strconv.ParseInt(r.URL.Query().Get("submitted"), 10, 64); err == nil {
		data["Message"] = "submission " + strconv.FormatInt(sid, 10) + " is queued for grading"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, data); err != nil && s.Log != nil {
		s.Log.Error("status page", "error", err.Error())
	}
}

func byCourse(ss []store.Session) []pageCourse {
	idx := map[string]int{}
	var out []pageCourse
	for _, s := range ss {
		name := s.ContextLabel
		if name == "" {
			name = s.ContextTitle
		}
		if name == "" {
			name = s.ContextID
		}
		key := s.Platform + "\x00" + s.ContextID
		ci, ok := idx[key]
		if !ok {
			ci = len(out)
			idx[key] = ci
			out = append(out, pageCourse{Name: name})
		}
		c := &out[ci]
		found := false
		for ai := range c.Assignments {
			if c.Assignments[ai].ID == s.ResourceLinkID {
				c.Assignments[ai].Sessions = append(c.Assignments[ai].Sessions, s)
				found = true
				break
			}
		}
		if !found {
			c.Assignments = append(c.Assignments, pageAssignment{Title: s.ResourceLinkTitle, ID: s.ResourceLinkID, Sessions: []store.Session{s}})
		}
	}
	return out
}

// mine is a student's view: each launch and the newest score journaled
// for it.
func mine(ss []store.Session, ps []store.Passback) []mineRow {
	newest := map[int64]store.Passback{}
	for _, p := range ps {
		if q, ok := newest[p.SessionID]; !ok || p.ID > q.ID {
			newest[p.SessionID] = p
		}
	}
	var out []mineRow
	for _, s := range ss {
		row := mineRow{Course: s.ContextLabel, Assignment: s.ResourceLinkTitle, Opened: s.Opened, Launched: s.LaunchedAt,
			Delivery: "no grade yet"}
		if row.Course == "" {
			row.Course = s.ContextTitle
		}
		if p, ok := newest[s.ID]; ok {
			row.Score, row.Status = p.Score, p.Status
			switch p.Status {
			case store.StatusSent:
				row.Delivery = "delivered"
				if p.SentAt != nil {
					row.Delivery += " " + p.SentAt.UTC().Format("2006-01-02 15:04 UTC")
				}
			case store.StatusRejected:
				row.Delivery = "refused by the LMS; your instructor can see why"
			case store.StatusSuperseded:
				row.Delivery = "replaced by a newer score"
			default:
				row.Delivery = "waiting to be delivered"
			}
		}
		out = append(out, row)
	}
	return out
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.pageError(w, r, http.StatusBadRequest, "no passback id to retry", "")
		return
	}
	if _, err := s.Grader.Sync(context.WithoutCancel(r.Context()), grade.SyncRequest{IDs: []int64{id}}); err != nil {
		code, _ := grade.ExitCode(err)
		if code != grade.ExitNoSession {
			s.pageError(w, r, http.StatusInternalServerError, "retry failed: "+err.Error(), "")
			return
		}
	}
	http.Redirect(w, r, s.Prefix+"?retried="+strconv.FormatInt(id, 10), http.StatusSeeOther)
}

// limitBody bounds a form POST before anything parses it (the CSRF check
// reads the form).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.Grader.Config.Submit.MaxBytes+64<<10)
		next.ServeHTTP(w, r)
	})
}

// submitForm is the page's upload: the student's own notebook, for one of
// their launches.
func (s *Server) submitForm(w http.ResponseWriter, r *http.Request) {
	id := IdentityOf(r.Context())
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		s.pageError(w, r, http.StatusBadRequest, "the upload is too large or malformed", "")
		return
	}
	f, _, err := r.FormFile("notebook")
	if err != nil {
		s.pageError(w, r, http.StatusBadRequest, "choose the notebook file to submit", "")
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, s.Grader.Config.Submit.MaxBytes+1))
	if err != nil {
		s.pageError(w, r, http.StatusBadRequest, "cannot read the upload", "")
		return
	}
	v, err := s.Grader.Submit(r.Context(), id.User.Name, grade.SubmitRequest{Path: r.PostFormValue("path"), Notebook: data})
	if err != nil {
		code, hint := grade.ExitCode(err)
		status := http.StatusBadRequest
		if code == grade.ExitError {
			status = http.StatusInternalServerError
		}
		s.pageError(w, r, status, err.Error(), hint)
		return
	}
	http.Redirect(w, r, s.Prefix+"?submitted="+strconv.FormatInt(v.ID, 10), http.StatusSeeOther)
}
