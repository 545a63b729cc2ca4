package lti11

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// closedAddr is an address nothing listens on: connecting is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// shortConn accepts the first n bytes written, then fails: a connection
// that drops in the middle of the request.
type shortConn struct {
	net.Conn
	n int
}

func (c *shortConn) Write(b []byte) (int, error) {
	if len(b) <= c.n {
		c.n -= len(b)
		return c.Conn.Write(b)
	}
	k, _ := c.Conn.Write(b[:c.n])
	c.n = 0
	return k, errors.New("connection reset by peer")
}

// TestClientNotSent checks NotSent, which lets the outbox tell a request
// the LMS never saw (a newer score need not wait for it) from one that may
// have reached it: only when no request was written is it set.
func TestClientNotSent(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(reply(200, poxResponse("success", "ok")))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	// The LMS reads the request, then drops the connection unanswered.
	dropSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer dropSrv.Close()
	release := make(chan struct{})
	slowSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slowSrv.Close()
	defer close(release) // before Close, which waits for the handler
	// The connection breaks after part of the request was written.
	partial := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &shortConn{Conn: c, n: 100}, nil
	}}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()

	cases := []struct {
		name    string
		ctx     context.Context
		client  *Client
		url     string
		notSent bool
	}{
		{"connection refused", context.Background(), &Client{}, "http://" + closedAddr(t) + "/outcomes", true},
		{"tls handshake refused", context.Background(), &Client{}, tlsSrv.URL + "/outcomes", true},
		{"cancelled before sending", cancelled, &Client{}, dropSrv.URL + "/outcomes", true},
		{"dropped after the request", context.Background(), &Client{}, dropSrv.URL + "/outcomes", false},
		{"partly written", context.Background(), &Client{HTTP: partial}, dropSrv.URL + "/outcomes", false},
		{"no answer in time", short, &Client{}, slowSrv.URL + "/outcomes", false},
	}
	for _, tc := range cases {
		o := tc.client.Do(tc.ctx, tc.url, testKey, testSecret, replace())
		if o.Status != Retry || o.HTTPStatus != 0 || o.NotSent != tc.notSent {
			t.Errorf("%s: %+v, want Retry with NotSent %v", tc.name, o, tc.notSent)
		}
	}
}
