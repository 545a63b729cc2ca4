package lmssim

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/lti11"
)

// The LTI 1.3 platform misbehaves on demand like the LTI 1.1 simulator:
// the same Fault, queued per route.
func TestPlatformFaults(t *testing.T) {
	p, plat := startPlatform(t)
	li := p.AddLineItem("1", "rl-1")
	p.Inject(
		Fault{Route: RouteScores, Status: 503, Body: `{"error":"down"}`},
		Fault{Route: RouteScores, Status: 429, RetryAfter: "7"},
		Fault{Route: RouteScores, Drop: true},
		Fault{Route: RouteToken, Status: 500, Repeat: 2},
	)
	c := &ags.Client{}
	ctx := context.Background()
	// The token faults are queued after the score faults, but only token
	// requests take them.
	for i := range 2 {
		if _, err := c.Token(ctx, plat, ags.ScopeScore); err == nil {
			t.Fatalf("token request %d: no error under a 500 fault", i)
		} else if ae := (*ags.Error)(nil); !errors.As(err, &ae) || ae.Status != ags.Retry || ae.HTTPStatus != 500 {
			t.Fatalf("token request %d: %v, want a retryable 500", i, err)
		}
	}
	score := func() ags.Outcome {
		return c.PostScore(ctx, plat, li, ags.Score{UserID: "u", ScoreGiven: 1, ScoreMaximum: 2, Timestamp: time.Now()})
	}
	want := []struct {
		code int
		ra   time.Duration
	}{{503, 0}, {429, 7 * time.Second}, {0, 0}}
	for i, w := range want {
		o := score()
		if o.Status != ags.Retry || o.HTTPStatus != w.code || o.RetryAfter != w.ra {
			t.Errorf("score %d: %+v, want retry, HTTP %d, Retry-After %s", i, o, w.code, w.ra)
		}
	}
	if o := score(); o.Status != ags.Sent {
		t.Fatalf("after the faults: %+v (%s)", o, p.LastError())
	}
	if s, _ := p.Score("1", "u"); s.Writes != 1 {
		t.Errorf("faulted scores were stored: %+v", s)
	}
	if got := p.Requests(RouteScores); got != 4 {
		t.Errorf("%d score requests counted, want 4", got)
	}
	if got := p.Requests(RouteToken); got != 3 {
		t.Errorf("%d token requests counted, want 3 (two faulted, one served)", got)
	}
	if st := p.Stats(); st.ScoreRequests != 4 || st.TokenRequests != 3 || st.ScoresStored != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A fault for one route waits for it; the other routes are served.
func TestFaultRoutesOnSim(t *testing.T) {
	s, url := start(t)
	s.Inject(Fault{Route: "elsewhere", Status: 503}, Fault{Route: RouteOutcomes, Status: 429, RetryAfter: "3"})
	if o := send(t, url, replace("a", "0.5")); o.Status != lti11.Retry || o.HTTPStatus != 429 || o.RetryAfter != 3*time.Second {
		t.Fatalf("outcome request: %+v, want the 429 fault (the one for another route stays queued)", o)
	}
	if o := send(t, url, replace("a", "0.5")); o.Status != lti11.Sent {
		t.Fatalf("second request: %+v", o)
	}
}

// The platform's delays, like the simulator's, end when it closes.
func TestPlatformFaultDelayClose(t *testing.T) {
	p, plat := startPlatform(t)
	p.Inject(Fault{Route: RouteToken, Delay: time.Hour})
	done := make(chan error, 1)
	go func() {
		_, err := (&ags.Client{HTTP: &http.Client{Timeout: 10 * time.Second}}).Token(context.Background(), plat, ags.ScopeScore)
		done <- err
	}()
	for p.Requests(RouteToken) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	p.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a token was issued by a closed platform")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the delayed request")
	}
}
