package doctor

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// lms is a TLS server standing in for an LMS whose clock is skew off
// ours; it records what each request carried.
type lms struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newLMS(t *testing.T, skew time.Duration) *lms {
	l := &lms{}
	l.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, fmt.Sprintf("%s %s auth=%q length=%d", r.Method, r.URL.Path, r.Header.Get("Authorization"), r.ContentLength))
		l.mu.Unlock()
		w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		http.Error(w, "sign your requests", http.StatusUnauthorized)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *lms) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(l.Certificate())
	return p
}

func (l *lms) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

// recordOutcome stores a launch whose outcome service is url.
func recordOutcome(t *testing.T, st store.Store, user, url string) {
	t.Helper()
	_, err := st.RecordLaunch(context.Background(), &store.Launch{Username: user, Version: "1.1", Platform: "course-key",
		LTIUserID: user, ResourceLinkID: "hw1", OutcomeURL: url, SourcedID: "sid-" + user, LaunchedAt: time.Now(), RecordedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNetwork(t *testing.T) {
	ctx := context.Background()
	good := newLMS(t, 0)
	skewed := newLMS(t, 3*time.Minute)
	w := newWorld(t, fmt.Sprintf("[[lti13.platforms]]\nissuer = \"https://skewed.example\"\nclient_id = \"c1\"\ntoken_url = %q\nprivate_key_file = \"/nonexistent.pem\"\n",
		skewed.URL+"/login/oauth2/token"))
	w.migrate(t)
	st, err := store.Open(ctx, w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Two launches on one host are one check.
	recordOutcome(t, st, "alice", good.URL+"/outcomes?tool=1")
	recordOutcome(t, st, "bob", good.URL+"/outcomes?tool=2")

	roots := x509.NewCertPool()
	roots.AddCert(good.Certificate())
	roots.AddCert(skewed.Certificate())
	s := Setup{Config: w.config(t), Client: NewClient(roots, 5*time.Second), NetworkTimeout: 5 * time.Second}
	cs := CheckNetwork(ctx, s, st)
	host := strings.TrimPrefix(good.URL, "https://")
	c := find(t, cs, "outcome_host")
	want(t, c, StatusOK, good.URL+": TLS 1.3, certificate trusted, HTTP 401, clock ", "")
	if c.Subject != host {
		t.Errorf("outcome_host subject %q, want %q", c.Subject, host)
	}
	if strings.Contains(c.Detail, "tool=") {
		t.Errorf("the detail shows the outcome URL's query: %s", c.Detail)
	}
	want(t, find(t, cs, "token_endpoint"), StatusFail, "its clock is 3m0s ahead of ours", "timedatectl")

	// Only bodiless, unauthenticated HEAD requests reached the LMSs.
	for _, r := range append(good.requests(), skewed.requests()...) {
		if !strings.HasPrefix(r, "HEAD ") || !strings.HasSuffix(r, `auth="" length=0`) {
			t.Errorf("the LMS got %s", r)
		}
	}
	if n := len(good.requests()); n != 1 {
		t.Errorf("the outcome host got %d requests, want 1", n)
	}

	// The same hosts against the system roots only: not trusted.
	s.Client = NewClient(nil, 5*time.Second)
	cs = CheckNetwork(ctx, s, st)
	want(t, find(t, cs, "outcome_host"), StatusFail, "TLS certificate not trusted", "SSL_CERT_FILE")
	want(t, find(t, cs, "token_endpoint"), StatusFail, "TLS certificate not trusted", "never turns verification off")
}

func TestNetworkTimeout(t *testing.T) {
	// A host that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	w := newWorld(t, fmt.Sprintf("[[lti13.platforms]]\nissuer = \"https://silent.example\"\nclient_id = \"c1\"\ntoken_url = \"https://%s/token\"\nprivate_key_file = \"/nonexistent.pem\"\n", ln.Addr()))
	timeout := 300 * time.Millisecond
	cs := CheckNetwork(context.Background(), Setup{Config: w.config(t), NetworkTimeout: timeout}, nil)
	want(t, find(t, cs, "token_endpoint"), StatusFail, "no answer within 300ms", "firewall")
	want(t, find(t, cs, "outcome_host"), StatusSkip, "needs a database", "")
}
