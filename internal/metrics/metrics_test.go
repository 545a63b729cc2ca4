package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
)

// brokenStore fails every read, as a database that went away does.
type brokenStore struct{ store.Store }

func (brokenStore) OutboxStats(context.Context) (store.OutboxStats, error) {
	return store.OutboxStats{}, errors.New("connection refused")
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String())); err != nil {
		t.Fatalf("does not parse: %v", err)
	}
	return rec.Body.String()
}

// The host label is the LMS host only (no path, no query), and at most
// MaxHosts of them: further hosts count as "other". A store that cannot be
// read says so (store_up 0) instead of failing the scrape.
func TestHostsBoundedAndStoreDown(t *testing.T) {
	m := New(Source{Store: brokenStore{}})
	for i := range MaxHosts + 8 {
		p := &store.Passback{TargetURL: fmt.Sprintf("https://LMS%d.example.edu/mod/lti/service.php?user=alice&sourcedid=s%d", i, i)}
		m.ObserveSend(p, passback.Outcome{Status: store.StatusSent})
	}
	m.ObserveSend(&store.Passback{TargetURL: "https://lms0.example.edu/other/path"}, passback.Outcome{Status: store.StatusRejected})
	m.ObserveSend(&store.Passback{TargetURL: "::not a url"}, passback.Outcome{Status: "bogus"})
	m.ObserveRequest("PROPFIND", "unmatched", 404, 0)
	text := scrape(t, m)
	hosts := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "ltigrade_sends_total{") {
			_, rest, _ := strings.Cut(line, `host="`)
			h, _, _ := strings.Cut(rest, `"`)
			hosts[h] = true
		}
	}
	if len(hosts) != MaxHosts+1 || !hosts[OtherHost] || !hosts["lms0.example.edu"] {
		t.Errorf("%d host labels (want %d and %q): %v", len(hosts), MaxHosts+1, OtherHost, hosts)
	}
	for _, want := range []string{
		`ltigrade_sends_total{host="other",outcome="sent"} 8`,
		`ltigrade_sends_total{host="lms0.example.edu",outcome="rejected"} 1`,
		`ltigrade_sends_total{host="other",outcome="retry"} 1`,
		`ltigrade_http_requests_total{code="404",method="other",route="unmatched"} 1`,
		"ltigrade_store_up 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, bad := range []string{"alice", "sourcedid", "service.php", "ltigrade_passbacks{", "PROPFIND"} {
		if strings.Contains(text, bad) {
			t.Errorf("the metrics carry %q", bad)
		}
	}
}
