package hubapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHub answers /hub/api/user for two tokens.
func fakeHub(t *testing.T, calls *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/hub/api/user" {
			http.NotFound(w, r)
			return
		}
		switch r.Header.Get("Authorization") {
		case "token grader-token":
			w.Write([]byte(`{"name":"ta1","kind":"user","admin":false,"groups":["instructors"],"scopes":["access:services"]}`))
		case "token down":
			http.Error(w, "oops", http.StatusBadGateway)
		default:
			http.Error(w, `{"status":403}`, http.StatusForbidden)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestUserCachesAnswers(t *testing.T) {
	var calls atomic.Int64
	srv := fakeHub(t, &calls)
	now := time.Now()
	c := &Client{APIURL: srv.URL + "/hub/api/", Now: func() time.Time { return now }, TTL: time.Minute}
	for range 3 {
		u, err := c.User(context.Background(), "grader-token")
		if err != nil || u.Name != "ta1" || len(u.Groups) != 1 || u.Groups[0] != "instructors" {
			t.Fatalf("got %+v %v", u, err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("hub asked %d times within the TTL, want 1", calls.Load())
	}
	now = now.Add(2 * time.Minute)
	if _, err := c.User(context.Background(), "grader-token"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("hub asked %d times after the TTL, want 2", calls.Load())
	}
}

func TestUserRefusalsAndOutages(t *testing.T) {
	var calls atomic.Int64
	srv := fakeHub(t, &calls)
	c := &Client{APIURL: srv.URL + "/hub/api"}
	if _, err := c.User(context.Background(), "stolen"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("unknown token: %v", err)
	}
	if _, err := c.User(context.Background(), ""); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("empty token: %v", err)
	}
	_, err := c.User(context.Background(), "down")
	if err == nil || errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "down") {
		t.Errorf("hub outage: %v (must not be a refusal, must not name the token)", err)
	}
	// an outage is not cached
	before := calls.Load()
	c.User(context.Background(), "down")
	if calls.Load() != before+1 {
		t.Errorf("an outage answer was cached")
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"token abc": "abc", "Bearer  xyz ": "xyz", "Basic abc": "", "abc": "", "": ""} {
		h := http.Header{}
		h.Set("Authorization", in)
		if got := BearerToken(h); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}
