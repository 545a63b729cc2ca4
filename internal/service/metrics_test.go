package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/metrics"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
)

// syncBuffer is a log sink the server's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// metricsFixture is the service fixture with metrics on, a metrics token
// file, a JSON log captured, and a clock for the queue's age.
type metricsFixture struct {
	*fixture
	log      *syncBuffer
	token    string
	now      time.Time
	nowMu    sync.Mutex
	spoolDir string
}

func newMetricsFixture(t *testing.T) *metricsFixture {
	m := &metricsFixture{fixture: newFixture(t), log: &syncBuffer{}, token: "metrics-token-" + randHex(t), now: time.Now()}
	cfg := m.service.Grader.Config
	m.spoolDir = cfg.Hub.SpoolDir
	tokFile := filepath.Join(t.TempDir(), "metrics.token")
	if err := os.WriteFile(tokFile, []byte(m.token+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	cfg.Service.MetricsTokenFile = tokFile
	tok, ok, err := cfg.MetricsToken()
	if err != nil || !ok {
		t.Fatalf("metrics token (mode 0400): %v %v", ok, err)
	}
	m.service.MetricsToken = tok
	m.service.Log = slog.New(slog.NewJSONHandler(m.log, nil))
	m.service.Metrics = metrics.New(metrics.Source{Store: m.st, SpoolDir: m.spoolDir, Log: m.service.Log,
		Now: func() time.Time { m.nowMu.Lock(); defer m.nowMu.Unlock(); return m.now }})
	m.service.Grader.OnSend = m.service.Metrics.ObserveSend
	m.srv.Close()
	m.srv = httptest.NewServer(m.service.Handler())
	t.Cleanup(m.srv.Close)
	return m
}

// scrape reads GET metrics with the Authorization header auth and parses
// it with an independent parser.
func (m *metricsFixture) scrape(auth string) (int, map[string]*dto.MetricFamily, string) {
	m.t.Helper()
	req, _ := http.NewRequest("GET", m.srv.URL+m.prefix+"metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	m.bodies = append(m.bodies, body.String())
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil, body.String()
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body.Bytes()))
	if err != nil {
		m.t.Fatalf("exposition does not parse: %v\n%s", err, body.String())
	}
	return resp.StatusCode, fams, body.String()
}

// value is the sample of family name whose labels include want; ok is
// false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, mt := range f.Metric {
		got := map[string]string{}
		for _, l := range mt.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case mt.Counter != nil:
			return mt.Counter.GetValue(), true
		case mt.Gauge != nil:
			return mt.Gauge.GetValue(), true
		case mt.Histogram != nil:
			return float64(mt.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func (m *metricsFixture) passback(user string) store.Passback {
	m.t.Helper()
	ps, err := m.st.ListPassbacks(context.Background(), store.PassbackFilter{Username: user, Limit: 1})
	if err != nil || len(ps) != 1 {
		m.t.Fatalf("passbacks of %s: %v %v", user, ps, err)
	}
	return ps[0]
}

// The metrics follow from what happened: a delivered score, a score the LMS
// failed twice (retry), then refused at a sync (rejected), spooled files;
// counts by status from the store, sends by outcome and LMS host as this
// process made them, the queue's age from the oldest unsent row, the last
// sync from the sync. Anonymous and student callers get nothing.
func TestMetricsFollowActions(t *testing.T) {
	m := newMetricsFixture(t)

	// Who may read: the metrics token, a grader, an admin; not anonymous,
	// a student, a token without the scope, or a wrong token.
	for _, c := range []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer wrong-" + m.token, 401}, {"token " + m.tokens["student"], 403},
		{"token " + m.tokens["noscope"], 403}, {"Bearer " + m.token, 200},
		{"token " + m.tokens["grader"], 200}, {"token " + m.tokens["admin"], 200},
	} {
		status, _, body := m.scrape(c.auth)
		if status != c.want || (status != 200 && strings.Contains(body, "ltigrade_")) {
			t.Errorf("scrape with %.12q…: %d, want %d\n%.300s", c.auth, status, c.want, body)
		}
	}
	_, fams, _ := m.scrape("Bearer " + m.token)
	for _, s := range store.Statuses {
		if v, ok := value(fams, "ltigrade_passbacks", map[string]string{"status": s}); !ok || v != 0 {
			t.Errorf("empty outbox: passbacks{status=%q} = %v %v, want 0", s, v, ok)
		}
	}
	if v, ok := value(fams, "ltigrade_last_sync_timestamp_seconds", nil); !ok || v != 0 {
		t.Errorf("never synced: last sync %v %v, want 0", v, ok)
	}
	if _, ok := value(fams, "ltigrade_sends_total", nil); ok {
		t.Errorf("sends counted before any send")
	}

	// alice: delivered.
	if status, _, body := m.call("grader", "POST", "api/scores", `{"notebook":"`+notebook+`","score":"0.8"}`); status != 200 {
		t.Fatalf("score alice: %d %s", status, body)
	}
	// bob: the LMS is down for both attempts of the score: queued.
	m.sim.Inject(lmssim.Fault{Status: 503, Repeat: 2})
	if status, _, body := m.call("grader", "POST", "api/scores", `{"notebook":"/home/jupyter-bob/course/hw1/hw1.ipynb","score":"0.5"}`); status != 200 {
		t.Fatalf("score bob: %d %s", status, body)
	}
	alice, bob := m.passback("alice"), m.passback("bob")
	if alice.Status != store.StatusSent || bob.Status != store.StatusRetry || bob.Attempts < 1 {
		t.Fatalf("setup: alice %s, bob %s after %d attempts", alice.Status, bob.Status, bob.Attempts)
	}
	host := passback.Host(&alice)
	if host == "" || strings.ContainsAny(host, "/?") {
		t.Fatalf("LMS host %q", host)
	}
	m.nowMu.Lock()
	m.now = bob.CreatedAt.Add(90 * time.Second)
	m.nowMu.Unlock()
	_, fams, _ = m.scrape("token " + m.tokens["grader"])
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ltigrade_passbacks", map[string]string{"status": "sent"}, 1},
		{"ltigrade_passbacks", map[string]string{"status": "retry"}, 1},
		{"ltigrade_passbacks", map[string]string{"status": "pending"}, 0},
		{"ltigrade_queue_oldest_age_seconds", nil, 90},
		{"ltigrade_sends_total", map[string]string{"outcome": "sent", "host": host}, 1},
		{"ltigrade_sends_total", map[string]string{"outcome": "retry", "host": host}, float64(bob.Attempts)},
		{"ltigrade_http_requests_total", map[string]string{"method": "POST", "route": "/api/scores", "code": "200"}, 2},
		{"ltigrade_http_requests_total", map[string]string{"method": "GET", "route": "/metrics", "code": "401"}, 2},
		{"ltigrade_http_requests_total", map[string]string{"method": "GET", "route": "/metrics", "code": "403"}, 2},
		{"ltigrade_store_up", nil, 1},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}

	// A sync: the LMS now refuses bob (dropped from the roster).
	m.sim.SetRoster("src-alice")
	before := time.Now()
	if status, _, body := m.call("grader", "POST", "api/sync", `{"now":true}`); status != 200 {
		t.Fatalf("sync: %d %s", status, body)
	}
	after := time.Now()
	if p := m.passback("bob"); p.Status != store.StatusRejected {
		t.Fatalf("bob after the sync: %s", p.Status)
	}
	// Spooled launches waiting, and one the ingestion refused.
	os.MkdirAll(filepath.Join(m.spoolDir, "failed"), 0o700)
	for _, n := range []string{"20260101T000000Z-a.json", "20260101T000001Z-b.json", "failed/20250101T000000Z-c.json"} {
		os.WriteFile(filepath.Join(m.spoolDir, n), []byte("{}"), 0o600)
	}
	_, fams, text := m.scrape("Bearer " + m.token)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ltigrade_passbacks", map[string]string{"status": "sent"}, 1},
		{"ltigrade_passbacks", map[string]string{"status": "rejected"}, 1},
		{"ltigrade_passbacks", map[string]string{"status": "retry"}, 0},
		{"ltigrade_queue_oldest_age_seconds", nil, 0},
		{"ltigrade_sends_total", map[string]string{"outcome": "rejected", "host": host}, 1},
		{"ltigrade_sends_total", map[string]string{"outcome": "sent", "host": host}, 1},
		{"ltigrade_spool_backlog_files", nil, 2},
		{"ltigrade_spool_failed_files", nil, 1},
		{"ltigrade_spool_up", nil, 1},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	last, _ := value(fams, "ltigrade_last_sync_timestamp_seconds", nil)
	if last < float64(before.UnixMicro())/1e6 || last > float64(after.UnixMicro())/1e6 {
		t.Errorf("last sync %v, want between %v and %v", last, before.Unix(), after.Unix())
	}
	// No user name, notebook, path or token in any label or value.
	for _, n := range []string{"alice", "bob", "ta1", "hw1", "jupyter-", "/outcomes", "src-"} {
		if strings.Contains(text, n) {
			t.Errorf("the metrics mention %q", n)
		}
	}

	// The log: one JSON line per request, with the route and the hub
	// user, never a path, a token or a secret.
	m.srv.Close() // waits for the handlers, and so for their log lines
	var requests, syncs int
	for _, line := range strings.Split(strings.TrimSpace(m.log.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		switch rec["msg"] {
		case "request":
			requests++
			if _, ok := rec["path"]; ok {
				t.Errorf("a request line has the path: %s", line)
			}
			if rec["route"] == "/api/scores" && rec["user"] != "ta1" {
				t.Errorf("score line without the grader: %s", line)
			}
		case "sync":
			syncs++
			if rec["rejected"] != 1.0 {
				t.Errorf("sync line: %s", line)
			}
		}
	}
	if requests != 13 || syncs != 1 {
		t.Errorf("%d request lines and %d sync lines, want 13 and 1:\n%s", requests, syncs, m.log.String())
	}
	m.bodies = append(m.bodies, m.log.String())
	m.tokens["metrics"] = m.token
	m.noSecrets()
}

// A metrics token file others may read is refused, as secret files are.
func TestMetricsTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "metrics.token")
	os.WriteFile(file, []byte("tok\n"), 0o644)
	os.Chmod(file, 0o644)
	cfg := &config.Config{}
	cfg.Service.MetricsTokenFile = file
	if _, ok, err := cfg.MetricsToken(); err == nil || ok || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("0644 token file: ok %v, err %v", ok, err)
	}
	os.Chmod(file, 0o600)
	if tok, ok, err := cfg.MetricsToken(); err != nil || !ok || tok.Reveal() != "tok" {
		t.Errorf("0600 token file: %v %v", ok, err)
	}
	if got := fmt.Sprint(cfg.MetricsToken()); strings.Contains(got, "tok ") || strings.Contains(got, "{tok}") {
		t.Errorf("the token prints: %s", got)
	}
	cfg.Service.MetricsTokenFile = ""
	if _, ok, err := cfg.MetricsToken(); ok || err != nil {
		t.Errorf("no file: %v %v", ok, err)
	}
}
