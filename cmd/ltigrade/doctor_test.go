package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdTLSLMS starts an HTTPS server standing in for an LMS whose clock is
// SKEW off ours (every answer is 401 with that Date), for `doctor
// --network`:
//
//	tlslms SKEW    sets $TLSLMS_URL and writes its certificate to $WORK/tlslms.pem
//
// A script trusts it with `env SSL_CERT_FILE=$WORK/tlslms.pem`, the way an
// admin points ltigrade at a private CA.
func cmdTLSLMS(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: tlslms SKEW")
	}
	skew, err := time.ParseDuration(args[0])
	ts.Check(err)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	ts.Defer(srv.Close)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	ts.Check(os.WriteFile(ts.MkAbs("tlslms.pem"), cert, 0o644))
	ts.Setenv("TLSLMS_URL", srv.URL)
}
