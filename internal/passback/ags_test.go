package passback

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/store"
)

// edxScores is an Open edX-like score service (xblock-lti-consumer): a
// score whose timestamp equals the stored one is refused with 400 and a
// Django REST framework field error. With loseNext it stores the next score
// and drops the connection unanswered: the reply is lost.
type edxScores struct {
	mu       sync.Mutex
	stored   map[string]string // userId -> timestamp
	loseNext bool
	requests int
}

func (e *edxScores) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			io.WriteString(w, `{"access_token":"edx-access-token","token_type":"bearer","expires_in":3600}`)
			return
		}
		var s struct {
			UserID    string `json:"userId"`
			Timestamp string `json:"timestamp"`
		}
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			t.Errorf("score body: %v", err)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		e.requests++
		if e.stored[s.UserID] == s.Timestamp {
			w.WriteHeader(400)
			io.WriteString(w, `{"timestamp": ["Score already exists for the provided timestamp"]}`)
			return
		}
		if e.stored == nil {
			e.stored = map[string]string{}
		}
		e.stored[s.UserID] = s.Timestamp
		if e.loseNext {
			e.loseNext = false
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(201)
	})
}

func agsJournal(t *testing.T, s store.Store, sess *store.Session, lineitem string, at time.Time) int64 {
	t.Helper()
	p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Score: "0.7",
		ScoreGiven: 7, ScoreMax: 10, Protocol: "ags", TargetURL: lineitem, SourcedID: "sub-" + sess.Username,
		ConsumerKey: "https://edx.example", ClientID: "c", CreatedAt: at}
	if err := s.Enqueue(context.Background(), []*store.Passback{p}); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// A score whose reply was lost is sent again with the same timestamp; edX
// refuses it because that timestamp is already stored. That refusal, after
// an attempt of this very row, means the first attempt delivered it: sent,
// not rejected. On a row's first attempt it stays a rejection (the
// platform holds a score with our timestamp that we never sent).
func TestAGSLostReplyThenSameTimestampIsSent(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	edx := &edxScores{loseNext: true}
	srv := httptest.NewServer(edx.handler(t))
	t.Cleanup(srv.Close)
	k := testRSAKey(t)
	e := &Engine{Store: s, Timeout: 10 * time.Second, Sender: &AGSSender{Client: &ags.Client{},
		Platform: func(iss, cid string) (ags.Platform, error) {
			return ags.Platform{Issuer: iss, ClientID: cid, TokenURL: srv.URL + "/token", Key: k}, nil
		}}}
	ctx := context.Background()

	id := agsJournal(t, s, session(t, s, "alice"), srv.URL+"/li/1", time.Now())
	got, err := e.SendNow(ctx, []int64{id}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Status == store.StatusRetry {
		// The quick second try did not fit in; sync's is the same attempt.
		if _, err := e.Drain(ctx, true); err != nil {
			t.Fatal(err)
		}
		p, err := s.Passback(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got[0] = *p
	}
	if p := got[0]; p.Status != store.StatusSent || p.Attempts != 2 || edx.requests != 2 {
		t.Fatalf("after a lost reply: %s after %d attempts (%d requests): %s; want sent after 2", p.Status, p.Attempts, edx.requests, p.LastError)
	}

	// First attempt, timestamp already held: rejected.
	at := time.Now().Add(time.Minute)
	edx.mu.Lock()
	edx.stored["sub-bob"] = at.UTC().Format(ags.TimestampFormat)
	edx.mu.Unlock()
	id = agsJournal(t, s, session(t, s, "bob"), srv.URL+"/li/1", at)
	got, err = e.SendNow(ctx, []int64{id}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p := got[0]; p.Status != store.StatusRejected || p.HTTPStatus != 400 {
		t.Fatalf("first attempt, timestamp already held: %+v", p)
	}
}

// PlatformSuperseded tells a row the platform refused as older from one
// ltigrade superseded itself because a newer row was journaled.
func TestAGSPlatformSuperseded(t *testing.T) {
	refused := &store.Passback{Status: store.StatusSuperseded, HTTPStatus: 409,
		LastError: ags.SupersededMessage + " (HTTP 409): Refusing score with an earlier timestamp for item 1 and user 2"}
	// Superseded by the store after a failed attempt: the earlier
	// attempt's error stays on the row.
	ours := &store.Passback{Status: store.StatusSuperseded, HTTPStatus: 503, LastError: "platform temporarily unavailable (HTTP 503)"}
	never := &store.Passback{Status: store.StatusSuperseded}
	sent := &store.Passback{Status: store.StatusSent, HTTPStatus: 409, LastError: refused.LastError}
	if !PlatformSuperseded(refused) || PlatformSuperseded(ours) || PlatformSuperseded(never) || PlatformSuperseded(sent) {
		t.Fatal("PlatformSuperseded confuses the platform's refusal with our own superseding")
	}
}
