package lti11

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testKey    = "ltigrade-key"
	testSecret = "t0p-s3cret-value"
)

func poxResponse(codeMajor, desc string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeResponse xmlns="` + Namespace + `"><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier>1</imsx_messageIdentifier><imsx_statusInfo><imsx_codeMajor>` +
		codeMajor + `</imsx_codeMajor><imsx_severity>status</imsx_severity><imsx_description>` + desc +
		`</imsx_description><imsx_messageRefIdentifier>m</imsx_messageRefIdentifier><imsx_operationRefIdentifier>replaceResult</imsx_operationRefIdentifier></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><replaceResultResponse/></imsx_POXBody></imsx_POXEnvelopeResponse>`
}

// reply answers every request with a fixed status, headers and body.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func replace() ResultRequest {
	return ResultRequest{Op: ReplaceResult, SourcedID: "sid-1", Score: "0.85"}
}

func doAgainst(t *testing.T, h http.Handler, c *Client, r ResultRequest) Outcome {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	if c == nil {
		c = &Client{}
	}
	return c.Do(context.Background(), srv.URL+"/outcomes", testKey, testSecret, r)
}

func TestClientSendsSignedPOX(t *testing.T) {
	var mu sync.Mutex
	var nonces []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/xml" {
			t.Errorf("method %s, content type %q", r.Method, r.Header.Get("Content-Type"))
		}
		v, err := VerifyRequest(r, body, func(k string) (string, bool) { return testSecret, k == testKey }, time.Now(), time.Minute)
		if err != nil {
			t.Errorf("verify: %v", err)
		}
		mu.Lock()
		nonces = append(nonces, v.Nonce)
		mu.Unlock()
		if !strings.Contains(string(body), "<textString>0.85</textString>") || !strings.Contains(string(body), "<imsx_messageIdentifier>") {
			t.Errorf("body %s", body)
		}
		if r.URL.Query().Get("tool") != "7" {
			t.Errorf("query lost: %s", r.URL)
		}
		io.WriteString(w, poxResponse("success", "Score for sid-1 is now 0.85"))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := &Client{}
	for range 2 {
		o := c.Do(context.Background(), srv.URL+"/outcomes?tool=7", testKey, testSecret, replace())
		if o.Status != Sent || o.HTTPStatus != 200 || o.Response == nil || o.Response.CodeMajor != "success" {
			t.Fatalf("outcome %+v", o)
		}
		if o.Message != "accepted (HTTP 200): Score for sid-1 is now 0.85" {
			t.Errorf("message %q", o.Message)
		}
	}
	if len(nonces) != 2 || nonces[0] == nonces[1] {
		t.Errorf("nonces not fresh: %v", nonces)
	}
}

func TestClientClassification(t *testing.T) {
	twoMiB := strings.Repeat("x", 2<<20)
	cases := []struct {
		name       string
		h          http.Handler
		status     Status
		retryAfter time.Duration
		msg        string // substring of the message
	}{
		{"processing", reply(200, poxResponse("processing", "queued")), Sent, 0, "accepted for processing"},
		{"success with odd status", reply(500, poxResponse("success", "stored")), Sent, 0, "stored"},
		{"200 failure (moodle)", reply(200, poxResponse("failure", "Invalid sourcedid")), Rejected, 0, "Invalid sourcedid"},
		{"422 failure (canvas)", reply(422, poxResponse("failure", "User is no longer in course")), Rejected, 0, "User is no longer in course"},
		{"unsupported", reply(200, poxResponse("unsupported", "readResult is not supported")), Rejected, 0, "not supported"},
		{"200 failure rate limit", reply(200, poxResponse("failure", "Rate limit exceeded, try again later"), "Retry-After", "30"), Retry, 30 * time.Second, "Rate limit"},
		{"500 failure", reply(500, poxResponse("failure", "Internal error")), Retry, 0, "Internal error"},
		{"401 pox bad signature", reply(401, poxResponse("failure", "OAuth signature check failed")), Rejected, 0, "signature"},
		{"401 duplicate nonce", reply(401, "Duplicate nonce detected"), Retry, 0, "nonce"},
		{"401 bad auth", reply(401, "Invalid authorization header"), Rejected, 0, "Invalid authorization header"},
		{"403 rate limit body", reply(403, "403 Forbidden (Rate Limit Exceeded)"), Retry, 0, "rate limited"},
		{"403 other", reply(403, "You are not allowed"), Rejected, 0, "not allowed"},
		{"404 html", reply(404, "<html><head><title>Not Found</title></head><body><h1>Page\nnot found</h1></body></html>"), Rejected, 0, "Not Found Page not found"},
		{"429 retry-after", reply(429, "slow down", "Retry-After", "7"), Retry, 7 * time.Second, "429"},
		{"429 huge retry-after", reply(429, "", "Retry-After", "99999999"), Retry, time.Hour, "429"},
		{"429 bad retry-after", reply(429, "", "Retry-After", "soon"), Retry, 0, "429"},
		{"503 date retry-after", reply(503, "", "Retry-After", "Sun, 01 Jan 2034 00:02:00 GMT"), Retry, 2 * time.Minute, "503"},
		{"503 past date", reply(503, "", "Retry-After", "Sun, 01 Jan 2000 00:00:00 GMT"), Retry, 0, "503"},
		{"408", reply(408, ""), Retry, 0, "408"},
		{"502 html", reply(502, "<html><body>Bad Gateway</body></html>"), Retry, 0, "Bad Gateway"},
		{"200 empty", reply(200, ""), Retry, 0, "no valid pox"},
		{"200 garbage", reply(200, "\x00\x01garbage\xff"), Retry, 0, "garbage"},
		{"200 unknown codeMajor", reply(200, poxResponse("ok", "fine")), Retry, 0, "no valid pox"},
		{"200 oversized", reply(200, twoMiB), Retry, 0, "oversized"},
		{"200 oversized valid pox", reply(200, poxResponse("success", "ok")+"<!--"+twoMiB+"-->"), Retry, 0, "oversized"},
		{"301", reply(301, "", "Location", "https://elsewhere.example/outcomes"), Rejected, 0, "redirected"},
		{"400", reply(400, "bad request"), Rejected, 0, "bad request"},
		{"drop", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}), Retry, 0, "request failed"},
		{"short body", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000")
			w.WriteHeader(200)
			io.WriteString(w, "<imsx_POX")
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}), Retry, 0, "reading response failed"},
	}
	now := time.Date(2034, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The clock is only used for Retry-After dates here; the test
			// servers do not verify timestamps.
			o := doAgainst(t, tc.h, &Client{Now: func() time.Time { return now }}, replace())
			if o.Status != tc.status || o.RetryAfter != tc.retryAfter || !strings.Contains(o.Message, tc.msg) {
				t.Errorf("got %v retry-after %s message %q; want %v %s ~%q", o.Status, o.RetryAfter, o.Message, tc.status, tc.retryAfter, tc.msg)
			}
			if strings.ContainsAny(o.Message, "\n\r\x00") || len([]rune(o.Message)) > maxMessage+1 {
				t.Errorf("unsanitised message %q", o.Message)
			}
		})
	}
}

// rawServer answers every connection with a fixed raw HTTP response, for
// status lines that net/http will not write (custom reason phrases).
func rawServer(t *testing.T, raw string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64<<10)
				conn.Read(buf)
				io.WriteString(conn, raw)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestClientCanvasRateLimitStatusLine(t *testing.T) {
	base := rawServer(t, "HTTP/1.1 403 Forbidden (Rate Limit Exceeded)\r\nContent-Length: 0\r\nRetry-After: 12\r\nConnection: close\r\n\r\n")
	o := (&Client{}).Do(context.Background(), base+"/outcomes", testKey, testSecret, replace())
	if o.Status != Retry || o.HTTPStatus != 403 || o.RetryAfter != 12*time.Second {
		t.Errorf("got %+v", o)
	}
}

func TestClientTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	c := &Client{HTTP: &http.Client{Timeout: 100 * time.Millisecond}}
	o := c.Do(context.Background(), srv.URL, testKey, testSecret, replace())
	if o.Status != Retry || o.Message != "request failed: timed out" {
		t.Errorf("client timeout: %+v", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	o = (&Client{}).Do(ctx, srv.URL, testKey, testSecret, replace())
	if o.Status != Retry || o.Message != "request failed: timed out" {
		t.Errorf("context deadline: %+v", o)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	o = (&Client{}).Do(ctx, srv.URL, testKey, testSecret, replace())
	if o.Status != Retry || o.Message != "request failed: cancelled" {
		t.Errorf("cancelled: %+v", o)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := (&Client{}).Do(context.Background(), "http://"+addr+"/outcomes", testKey, testSecret, replace())
	if o.Status != Retry || o.HTTPStatus != 0 || !strings.Contains(o.Message, "refused") {
		t.Errorf("got %+v", o)
	}
}

func TestClientRedirectNotFollowed(t *testing.T) {
	hit := false
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit = true }))
	defer target.Close()
	o := doAgainst(t, reply(307, "", "Location", target.URL), nil, replace())
	if o.Status != Rejected || hit {
		t.Errorf("got %+v, target hit %v", o, hit)
	}
}

func TestClientTLSVerified(t *testing.T) {
	srv := httptest.NewUnstartedServer(reply(200, poxResponse("success", "ok")))
	// The refused handshake is the point of the test; keep it out of the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	o := (&Client{}).Do(context.Background(), srv.URL, testKey, testSecret, replace())
	if o.Status != Retry || !strings.Contains(o.Message, "certificate") {
		t.Errorf("self-signed certificate accepted: %+v", o)
	}
	o = (&Client{HTTP: srv.Client()}).Do(context.Background(), srv.URL, testKey, testSecret, replace())
	if o.Status != Sent {
		t.Errorf("trusted certificate: %+v", o)
	}
}

func TestClientReadResult(t *testing.T) {
	body := strings.Replace(poxResponse("success", "Result read"), "<replaceResultResponse/>",
		"<readResultResponse><result><resultScore><language>en</language><textString>0.7</textString></resultScore></result></readResultResponse>", 1)
	o := doAgainst(t, reply(200, body), nil, ResultRequest{Op: ReadResult, SourcedID: "s"})
	if o.Status != Sent || !o.Response.HasScore || o.Response.Score != "0.7" {
		t.Errorf("got %+v", o)
	}
}

func TestClientNeverLeaksCredentials(t *testing.T) {
	// A debugging LMS echoes our header and its copy of the secret.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		desc := fmt.Sprintf("bad sig; header was %s; key secret %s&amp; \x1b[31mred\x1b[0m\u202Eevil", auth, testSecret)
		w.WriteHeader(401)
		io.WriteString(w, poxResponse("failure", desc))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	o := (&Client{}).Do(context.Background(), srv.URL, testKey, testSecret, replace())
	if o.Status != Rejected {
		t.Errorf("status %v", o.Status)
	}
	for _, bad := range []string{testSecret, "oauth_signature=\"", "oauth_nonce", "\x1b", "\u202E"} {
		if strings.Contains(o.Message, bad) {
			t.Errorf("message leaks %q: %q", bad, o.Message)
		}
	}
	// Plain-text and HTML paths too, with a long body.
	long := strings.Repeat("secret is "+testSecret+" ", 100)
	o = doAgainst(t, reply(400, long), nil, replace())
	if strings.Contains(o.Message, testSecret) || strings.Contains(o.Message, testSecret[:8]) || len([]rune(o.Message)) > maxMessage+1 {
		t.Errorf("long message %q", o.Message)
	}
}

func TestClientRejectsBadInput(t *testing.T) {
	c := &Client{}
	for name, tc := range map[string]struct {
		url string
		r   ResultRequest
	}{
		"bad request":  {"http://127.0.0.1:1/outcomes", ResultRequest{Op: ReplaceResult, SourcedID: "s"}},
		"relative url": {"/outcomes", replace()},
		"ftp url":      {"ftp://lms.example/outcomes", replace()},
		"empty url":    {"", replace()},
	} {
		if o := c.Do(context.Background(), tc.url, testKey, testSecret, tc.r); o.Status != Rejected {
			t.Errorf("%s: %+v", name, o)
		}
	}
	if o := c.Do(context.Background(), "http://127.0.0.1:1/", "", testSecret, replace()); o.Status != Rejected {
		t.Errorf("empty key: %+v", o)
	}
}

func TestClientMaxBody(t *testing.T) {
	o := doAgainst(t, reply(200, poxResponse("success", "ok")), &Client{MaxBody: 100}, replace())
	if o.Status != Retry || !strings.Contains(o.Message, "oversized") {
		t.Errorf("got %+v", o)
	}
}

func TestStatusString(t *testing.T) {
	if Sent.String() != "sent" || Rejected.String() != "rejected" || Retry.String() != "retry" || Status(0).String() != "Status(0)" {
		t.Error("status names")
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize(" a\r\n\tb\x00c\xff d\u2028e "); got != "a b c d e" {
		t.Errorf("sanitize: %q", got)
	}
	if got := truncate("héllo", 2); got != "hé…" {
		t.Errorf("truncate: %q", got)
	}
}
