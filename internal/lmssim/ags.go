package lmssim

// The Assignment and Grade Services of Platform: line items (listed,
// created, read), scores and results.

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

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

type agsLineItem struct {
	id, resourceLinkID, label string
	resourceID, tag           string
	scoreMax                  float64
}

// LineItem describes a line item to create with CreateLineItem.
type LineItem struct {
	Label          string  // required
	ScoreMaximum   float64 // required, > 0
	ResourceLinkID string  // the resource link it grades, if any
	ResourceID     string  // the tool's own id for it, if any
	Tag            string
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

// CreateLineItem adds a line item as POST /lineitems does, with the next
// free numeric id, and returns its id and URL.
func (p *Platform) CreateLineItem(li LineItem) (id, url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.createLineItem(li)
}

// createLineItem needs p.mu held.
func (p *Platform) createLineItem(li LineItem) (id, url string) {
	taken := map[string]bool{}
	for _, it := range p.items {
		taken[it.id] = true
	}
	n := len(p.items) + 1
	for taken[strconv.Itoa(n)] {
		n++
	}
	id = strconv.Itoa(n)
	p.items = append(p.items, agsLineItem{id: id, resourceLinkID: li.ResourceLinkID, label: li.Label,
		resourceID: li.ResourceID, tag: li.Tag, scoreMax: li.ScoreMaximum})
	p.stats.LineItemsCreated++
	return id, p.lineItemURL(id)
}

// LineItemsURL is the line item container URL (the launch claim's
// lineitems).
func (p *Platform) LineItemsURL() string { return p.BaseURL() + "/lineitems" }

// LineItemURL is the URL of the line item with this id.
func (p *Platform) LineItemURL(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lineItemURL(id)
}

// lineItemURL needs p.mu held.
func (p *Platform) lineItemURL(id string) string {
	u := p.kit.baseURL() + "/lineitems/" + url.PathEscape(id) + "/lineitem"
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

// OnScore calls f with every score stored, after the request's lock is
// released; `ltigrade sandbox --lti13` prints them.
func (p *Platform) OnScore(f func(Score)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onScore = f
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
	ResourceID     string  `json:"resourceId,omitempty"`
	Tag            string  `json:"tag,omitempty"`
}

// itemJSON needs p.mu held.
func (p *Platform) itemJSON(it agsLineItem) lineItemJSON {
	return lineItemJSON{ID: p.lineItemURL(it.id), Label: it.label, ScoreMaximum: it.scoreMax,
		ResourceLinkID: it.resourceLinkID, ResourceID: it.resourceID, Tag: it.tag}
}

func (p *Platform) serveLineItems(w http.ResponseWriter, r *http.Request) {
	if !p.bearer(w, r, AGSScopeLineItemReadOnly, AGSScopeLineItem) {
		return
	}
	q := r.URL.Query()
	rl, rid, tag := q.Get("resource_link_id"), q.Get("resource_id"), q.Get("tag")
	var rows []lineItemJSON
	p.mu.Lock()
	for _, it := range p.items {
		if (rl == "" || it.resourceLinkID == rl) && (rid == "" || it.resourceID == rid) && (tag == "" || it.tag == tag) {
			rows = append(rows, p.itemJSON(it))
		}
	}
	p.mu.Unlock()
	paged(p, w, r, rows, agsLineItemsType)
}

// serveCreateLineItem is POST to the container: a new line item, 201 with
// its JSON (id set), as the AGS spec and Moodle answer.
func (p *Platform) serveCreateLineItem(w http.ResponseWriter, r *http.Request) {
	body, ok := readLimited(r)
	if !ok {
		p.fail(w, http.StatusRequestEntityTooLarge, "invalid_request", "request too large")
		return
	}
	if !p.bearer(w, r, AGSScopeLineItem) {
		return
	}
	if mediaType(r.Header.Get("Content-Type")) != agsLineItemType {
		p.fail(w, http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be "+agsLineItemType)
		return
	}
	var in struct {
		ID             *string  `json:"id"`
		Label          *string  `json:"label"`
		ScoreMaximum   *float64 `json:"scoreMaximum"`
		ResourceLinkID string   `json:"resourceLinkId"`
		ResourceID     string   `json:"resourceId"`
		Tag            string   `json:"tag"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		p.fail(w, http.StatusBadRequest, "invalid_request", "body is not a line item JSON object")
		return
	}
	var problems []string
	if in.ID != nil {
		problems = append(problems, "id (the platform assigns it)")
	}
	if in.Label == nil || strings.TrimSpace(*in.Label) == "" {
		problems = append(problems, "label")
	}
	if in.ScoreMaximum == nil || *in.ScoreMaximum <= 0 || math.IsInf(*in.ScoreMaximum, 0) {
		problems = append(problems, "scoreMaximum")
	}
	if len(problems) > 0 {
		p.fail(w, http.StatusBadRequest, "invalid_request", "invalid line item: "+strings.Join(problems, ", "))
		return
	}
	p.mu.Lock()
	id, _ := p.createLineItem(LineItem{Label: *in.Label, ScoreMaximum: *in.ScoreMaximum,
		ResourceLinkID: in.ResourceLinkID, ResourceID: in.ResourceID, Tag: in.Tag})
	var row lineItemJSON
	for _, it := range p.items {
		if it.id == id {
			row = p.itemJSON(it)
		}
	}
	p.mu.Unlock()
	w.Header().Set("Location", row.ID)
	p.reply(w, http.StatusCreated, agsLineItemType, row)
}

func (p *Platform) serveLineItem(w http.ResponseWriter, r *http.Request) {
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
	onScore := p.onScore
	p.mu.Unlock()
	if onScore != nil {
		onScore(s)
	}
	base := p.kit.baseFor(r)
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
	base := p.kit.baseFor(r) + "/lineitems/" + url.PathEscape(it.id) + "/lineitem/results/"
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
