package lmssim

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault makes a simulator misbehave for the next request(s). Faults queue
// up and are consumed in order, one request each, by the requests of their
// Route (any faultable request when Route is "").
type Fault struct {
	Status     int           // answer with this HTTP status and Body; 0: process the request normally (after Delay)
	Body       string        // response body for Status
	RetryAfter string        // Retry-After header value, sent with Status
	Delay      time.Duration // wait before answering; the request is still processed afterwards even if the client gave up, as a real LMS would
	Drop       bool          // read the request, then close the connection without a reply
	Repeat     int           // number of requests this fault applies to; 0 means 1
	// Route limits the fault to one kind of request: Sim has "outcomes";
	// Platform has the Route* names. "" matches every faultable request.
	Route string
}

// server is the HTTP plumbing Sim and Platform share: one listener's
// lifecycle (Start, Close, a base URL for use under another server), a
// latency added to every request, queued faults, and request counts by
// route. Its zero value is not usable; call newServer.
type server struct {
	what string // "simulator", "platform": for errors

	mu      sync.Mutex
	srv     *http.Server
	base    string
	latency time.Duration
	faults  []Fault
	counts  map[string]int

	done      chan struct{}
	closeOnce sync.Once
}

func newServer(what string) *server {
	return &server{what: what, counts: map[string]int{}, done: make(chan struct{})}
}

// start serves h on addr (e.g. "127.0.0.1:0") and returns the base URL,
// which it also records.
func (s *server) start(addr string, h http.Handler) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New(s.what + " already started")
	}
	select {
	case <-s.done:
		return "", errors.New(s.what + " closed")
	default:
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s.base = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) // returns http.ErrServerClosed on Close
	return s.base, nil
}

// close stops the server started by start and wakes delayed handlers. It
// is safe to call more than once, and without start.
func (s *server) close() error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

func (s *server) setBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = strings.TrimRight(u, "/")
}

// baseURL is the recorded base URL ("" before Start or SetBaseURL).
func (s *server) baseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// baseFor is the base URL, or the request's own when none is set.
func (s *server) baseFor(r *http.Request) string {
	if b := s.baseURL(); b != "" {
		return b
	}
	return "http://" + r.Host
}

func (s *server) inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

func (s *server) setLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// requests counts the requests of route, faulted ones included; "" counts
// every route.
func (s *server) requests(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if route != "" {
		return s.counts[route]
	}
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

// nextFault takes the first queued fault for route; s.mu must be held.
func (s *server) nextFault(route string) (Fault, bool) {
	for i, f := range s.faults {
		if f.Route != "" && f.Route != route {
			continue
		}
		if f.Repeat > 1 {
			s.faults[i].Repeat--
		} else {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		return f, true
	}
	return Fault{}, false
}

// sleep waits d unless the server closes first; it reports whether the
// full wait happened. It deliberately ignores the request context: an LMS
// does not notice that a client gave up.
func (s *server) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// route wraps a handler with the shared behaviour: the request is counted
// under name and read in full (up to maxRequestBody+1 bytes, which h reads
// again from r.Body), then the latency and the next fault for name apply.
// A dropped request was still received, and a delayed one is still
// processed after the delay, as a real LMS would.
func (s *server) route(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		s.mu.Lock()
		s.counts[name]++
		f, faulted := s.nextFault(name)
		latency := s.latency
		s.mu.Unlock()
		if err != nil {
			http.Error(w, "cannot read request", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !s.sleep(latency + f.Delay) {
			return
		}
		if faulted && f.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler) // closes the connection without a reply
		}
		if faulted && f.Status != 0 {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			w.Header().Set("Content-Type", faultContentType(f.Body))
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
			return
		}
		h(w, r)
	}
}

// faultContentType guesses a fault body's media type from its first
// character, so clients that parse XML or JSON errors get the kind they
// expect.
func faultContentType(body string) string {
	switch b := strings.TrimSpace(body); {
	case strings.HasPrefix(b, "<"):
		return "application/xml"
	case strings.HasPrefix(b, "{"), strings.HasPrefix(b, "["):
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// readLimited reads a request body of at most maxRequestBody bytes.
func readLimited(r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	return data, err == nil && len(data) <= maxRequestBody
}
