package passback

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/store"
)

func closedURL(t *testing.T, path string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + path
}

const poxSuccess = `<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeResponse xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier>1</imsx_messageIdentifier><imsx_statusInfo><imsx_codeMajor>success</imsx_codeMajor><imsx_severity>status</imsx_severity><imsx_description>ok</imsx_description><imsx_operationRefIdentifier>replaceResult</imsx_operationRefIdentifier></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><replaceResultResponse/></imsx_POXBody></imsx_POXEnvelopeResponse>`

// dropper reads each request and drops the connection unanswered: the LMS
// may have acted on it.
func dropper(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A request that never left (connection refused, no AGS token, line item
// lookup failed) is a certain retry; one the LMS read and dropped is not.
func TestSendersUncertainOnlyWhenWritten(t *testing.T) {
	secret := func(string) (string, error) { return "test-secret-value", nil }
	l11 := &LTI11Sender{Client: &lti11.Client{}, Secret: secret}
	drop := dropper(t)
	tokenDown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(tokenDown.Close)
	tokenOK := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"access_token":"test-access-token","token_type":"bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokenOK.Close)
	k := testRSAKey(t)
	agsWith := func(tokenURL string) *AGSSender {
		return &AGSSender{Client: &ags.Client{}, Platform: func(iss, cid string) (ags.Platform, error) {
			return ags.Platform{Issuer: iss, ClientID: cid, TokenURL: tokenURL, Key: k}, nil
		}}
	}
	cases := []struct {
		name      string
		s         Sender
		p         store.Passback
		uncertain bool
	}{
		{"lti11 refused", l11, store.Passback{TargetURL: closedURL(t, "/outcomes"), ConsumerKey: "k", SourcedID: "s", Score: "0.5"}, false},
		{"lti11 dropped", l11, store.Passback{TargetURL: drop.URL + "/outcomes", ConsumerKey: "k", SourcedID: "s", Score: "0.5"}, true},
		{"ags refused", agsWith(tokenOK.URL), store.Passback{TargetURL: closedURL(t, "/li/1"), ConsumerKey: "iss", ClientID: "c", SourcedID: "u", ScoreGiven: 1, ScoreMax: 2, CreatedAt: time.Now()}, false},
		{"ags token endpoint down", agsWith(tokenDown.URL), store.Passback{TargetURL: drop.URL + "/li/1", ConsumerKey: "iss", ClientID: "c", SourcedID: "u", ScoreGiven: 1, ScoreMax: 2, CreatedAt: time.Now()}, false},
		{"ags line item lookup refused", agsWith(tokenOK.URL), store.Passback{LineItems: closedURL(t, "/lineitems"), ResourceLinkID: "rl", ConsumerKey: "iss", ClientID: "c", SourcedID: "u", ScoreGiven: 1, ScoreMax: 2, CreatedAt: time.Now()}, false},
		{"ags dropped", agsWith(tokenOK.URL), store.Passback{TargetURL: drop.URL + "/li/1", ConsumerKey: "iss", ClientID: "c", SourcedID: "u", ScoreGiven: 1, ScoreMax: 2, CreatedAt: time.Now()}, true},
	}
	for _, tc := range cases {
		o := tc.s.Send(context.Background(), &tc.p)
		if o.Status != store.StatusRetry || o.Uncertain != tc.uncertain {
			t.Errorf("%s: %+v, want retry with Uncertain %v", tc.name, o, tc.uncertain)
		}
	}
}

// After the LMS refused the connection, a newer score of the session (here
// to a launch whose LMS answers) is sent at once: the refused request never
// left, so there is no in-flight window to wait out.
func TestRefusedRequestHoldsNothingBack(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	sess := session(t, s, "alice")
	lms := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, poxSuccess)
	}))
	t.Cleanup(lms.Close)
	e := &Engine{Store: s, Timeout: 5 * time.Second, Sender: &LTI11Sender{Client: &lti11.Client{},
		Secret: func(string) (string, error) { return "test-secret-value", nil }}}
	enqueue := func(score, url string) int64 {
		p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Score: score,
			Protocol: "lti11", TargetURL: url, SourcedID: sess.SourcedID, ConsumerKey: "k"}
		if err := s.Enqueue(context.Background(), []*store.Passback{p}); err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	first := enqueue("0.5", closedURL(t, "/outcomes"))
	got, err := e.SendNow(context.Background(), []int64{first}, time.Second)
	if err != nil || got[0].Status != store.StatusRetry {
		t.Fatalf("refused: %+v, %v", got, err)
	}
	second := enqueue("0.6", lms.URL+"/outcomes")
	got, err = e.SendNow(context.Background(), []int64{second}, time.Second)
	if err != nil || got[0].Status != store.StatusSent {
		t.Fatalf("newer score after a refused one: %+v, %v; want sent at once", got, err)
	}
}

var testKey struct {
	sync.Once
	k *rsa.PrivateKey
}

func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	testKey.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey.k = k
	})
	return testKey.k
}
