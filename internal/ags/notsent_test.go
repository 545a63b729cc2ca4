package ags

import (
	"context"
	"net"
	"net/http"
	"testing"
)

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

// TestPostScoreNotSent checks NotSent, which tells the outbox that the
// score request never reached the platform (so a newer score need not wait
// for it): a refused connection, or a token that could not be had (the
// score request was then never made). A score request the platform read
// and dropped unanswered may have been stored: NotSent stays false.
func TestPostScoreNotSent(t *testing.T) {
	f := newFake(t)
	o := (&Client{}).PostScore(context.Background(), f.platform(t), "http://"+closedAddr(t)+"/li/1", testScore())
	if o.Status != Retry || !o.NotSent {
		t.Errorf("score endpoint refused: %+v, want Retry, NotSent", o)
	}

	f = newFake(t)
	f.tokenReply = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }
	o = (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore())
	if o.Status != Retry || !o.NotSent || f.lastScore.Load() != nil {
		t.Errorf("token endpoint 503: %+v, want Retry, NotSent and no score request", o)
	}

	f = newFake(t)
	p := f.platform(t)
	p.TokenURL = "http://" + closedAddr(t) + "/token"
	o = (&Client{}).PostScore(context.Background(), p, f.srv.URL+"/li/1", testScore())
	if o.Status != Retry || !o.NotSent {
		t.Errorf("token endpoint refused: %+v, want Retry, NotSent", o)
	}

	f = newFake(t)
	f.score = func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}
	o = (&Client{}).PostScore(context.Background(), f.platform(t), f.srv.URL+"/li/1", testScore())
	if o.Status != Retry || o.NotSent {
		t.Errorf("score request dropped unanswered: %+v, want Retry, may have been sent", o)
	}
}
