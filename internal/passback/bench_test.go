package passback_test

// Benchmarks for issue #2 (docs/benchmarks.md): passbacks per second
// through the outbox and the real LTI 1.1 client against the in-process LMS
// simulator on loopback, with no added latency. Run them with `make bench`
// or
//
//	go test -run=NONE -bench=. -benchtime=2000x ./internal/passback/
//
// They report figures; they assert only that every score arrived.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
)

const (
	benchKey    = "bench-key"
	benchSecret = "bench-secret-0123456789abcdef"
)

// benchEnv is a store holding n sessions whose outcome service is a
// running lmssim, and a config naming the consumer's secret file, as
// `ltigrade sync` would load it.
type benchEnv struct {
	st       store.Store
	sim      *lmssim.Sim
	cfg      *config.Config
	sessions []*store.Launch
}

func newBenchEnv(b *testing.B, n int) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(benchSecret+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.toml")
	cfgText := fmt.Sprintf("database = %q\n[[lti11.consumers]]\nkey = %q\nsecret_file = %q\n",
		filepath.Join(dir, "ltigrade.db"), benchKey, secretFile)
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(config.Options{ConfigFlag: cfgFile, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	sim := lmssim.New(map[string]string{benchKey: benchSecret})
	sim.SetLatency(0)
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sim.Close() })
	st, err := store.Open(context.Background(), cfg.Database)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := &benchEnv{st: st, sim: sim, cfg: cfg}
	now := time.Now()
	for i := range n {
		user := "user" + strconv.Itoa(i)
		e.sessions = append(e.sessions, &store.Launch{Username: user, Version: "1.1", Platform: benchKey,
			LTIUserID: "lti-" + user, ResourceLinkID: "hw1", ResourceLinkTitle: "Homework 1",
			OutcomeURL: base + "/outcomes", SourcedID: "77-1001-2001-" + user,
			ResultDataAccepted: []string{"text", "url"}, Checkout: "materials",
			Opened: "materials/hw1/hw1.ipynb", OpenedFile: true, LaunchedAt: now, AuthState: []byte("{}")})
	}
	for i := 0; i < n; i += 10000 {
		if err := st.RecordLaunches(context.Background(), e.sessions[i:min(i+10000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// timedStore counts the store calls Drain makes and the wall time spent in
// them. Drain makes them from one goroutine, one at a time, while sends run
// in others; so claim_ns/op and complete_ns/op are the parts of drain_ns/op
// during which the engine waits for the database.
type timedStore struct {
	store.Store
	claims, claimNs, completes, completeNs atomic.Int64
}

func (t *timedStore) ClaimDue(ctx context.Context, c store.Claim) ([]store.Passback, error) {
	t0 := time.Now()
	ps, err := t.Store.ClaimDue(ctx, c)
	t.claimNs.Add(int64(time.Since(t0)))
	t.claims.Add(1)
	return ps, err
}

func (t *timedStore) Complete(ctx context.Context, owner string, now time.Time, results map[int64]store.Result) error {
	t0 := time.Now()
	err := t.Store.Complete(ctx, owner, now, results)
	t.completeNs.Add(int64(time.Since(t0)))
	t.completes.Add(1)
	return err
}

// engine is what `ltigrade sync` builds (internal/cli/sync.go): the real
// LTI 1.1 sender on http.DefaultTransport, the secret read per attempt.
func (e *benchEnv) engine(st store.Store, concurrency int, transport http.RoundTripper) *passback.Engine {
	return &passback.Engine{Store: st, Timeout: 20 * time.Second, Concurrency: concurrency,
		Sender: &passback.LTI11Sender{Client: &lti11.Client{HTTP: &http.Client{Transport: transport}},
			Secret: func(key string) (string, error) {
				s, err := e.cfg.ConsumerSecret(key)
				return s.Reveal(), err
			}}}
}

// journal enqueues one passback per session, batch rows per Enqueue
// transaction (batch 1 is what `ltigrade score` does for each score).
func (e *benchEnv) journal(b *testing.B, batch int) {
	ctx := context.Background()
	for i := 0; i < len(e.sessions); i += batch {
		var ps []*store.Passback
		for j, l := range e.sessions[i:min(i+batch, len(e.sessions))] {
			given := float64((i + j) % 101)
			ps = append(ps, &store.Passback{SessionID: l.SessionID, LaunchID: l.ID, Username: l.Username,
				Notebook: "/home/jupyter-" + l.Username + "/materials/hw1/hw1.ipynb",
				Score:    strconv.FormatFloat(given/100, 'f', -1, 64), ScoreGiven: given, ScoreMax: 100,
				Protocol: "lti11", TargetURL: l.OutcomeURL, SourcedID: l.SourcedID, ConsumerKey: l.Platform,
				ResultData: "autograded"})
		}
		if err := e.st.Enqueue(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
}

// check fails the benchmark unless the LMS holds every score.
func (e *benchEnv) check(b *testing.B, st passback.Stats) {
	b.Helper()
	if st.Sent != len(e.sessions) || st.Rejected != 0 || st.Retry != 0 {
		b.Fatalf("drain: %+v, want %d sent", st, len(e.sessions))
	}
	if got := len(e.sim.Grades()); got != len(e.sessions) {
		b.Fatalf("LMS holds %d grades, want %d", got, len(e.sessions))
	}
}

// BenchmarkPassbackThroughput journals b.N scores (each for its own
// session) and drains the outbox with `ltigrade sync`'s engine, concurrency
// 8, against lmssim on loopback. The measured time holds the journal
// (Enqueue, fsync per transaction) and the drain (claim, send, complete);
// passbacks/s is b.N over that time. journal_ns/op and drain_ns/op split it;
// claim_ns/op and complete_ns/op are the parts of the drain spent waiting
// for ClaimDue and Complete, claims/op how many ClaimDue calls it made.
//
// Sub-benchmarks: journal=100 enqueues 100 scores per transaction (a batch
// import of grades); journal=1 one per transaction, as `ltigrade score`
// journals each score.
func BenchmarkPassbackThroughput(b *testing.B) {
	for _, batch := range []int{100, 1} {
		b.Run("journal="+strconv.Itoa(batch), func(b *testing.B) {
			benchThroughput(b, batch, 8, http.DefaultTransport)
		})
	}
}

// BenchmarkPassbackTransport is journal=100 again with a transport that
// keeps one idle connection per worker. http.DefaultTransport (what the CLI
// uses) keeps only 2 idle connections per host, so with 8 workers about
// every second request opens a new TCP connection (measured: ~900 per 2,000
// passbacks, against 9 here). On loopback that costs little; against an
// LMS over TLS each one is a full handshake.
func BenchmarkPassbackTransport(b *testing.B) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 8
	defer t.CloseIdleConnections()
	b.Run("idle_per_host=8", func(b *testing.B) { benchThroughput(b, 100, 8, t) })
}

func benchThroughput(b *testing.B, batch, concurrency int, transport http.RoundTripper) {
	e := newBenchEnv(b, b.N)
	ts := &timedStore{Store: e.st}
	eng := e.engine(ts, concurrency, transport)
	b.ResetTimer()
	t0 := time.Now()
	e.journal(b, batch)
	journaled := time.Since(t0)
	st, err := eng.Drain(context.Background(), true)
	b.StopTimer()
	drained := time.Since(t0) - journaled
	if err != nil {
		b.Fatal(err)
	}
	e.check(b, st)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passbacks/s")
	b.ReportMetric(float64(journaled.Nanoseconds())/float64(b.N), "journal_ns/op")
	b.ReportMetric(float64(drained.Nanoseconds())/float64(b.N), "drain_ns/op")
	b.ReportMetric(float64(ts.claimNs.Load())/float64(b.N), "claim_ns/op")
	b.ReportMetric(float64(ts.completeNs.Load())/float64(b.N), "complete_ns/op")
	b.ReportMetric(float64(ts.claims.Load())/float64(b.N), "claims/op")
	b.ReportMetric(float64(ts.completes.Load())/float64(b.N), "completes/op")
}

// Issue #4: the same measurement for LTI 1.3 Assignment and Grade Services.

const (
	benchIssuer   = "https://lms.example.edu"
	benchClientID = "bench-client"
)

// agsBenchEnv is a store holding n LTI 1.3 sessions whose line item lives on
// a running lmssim.Platform, and a config with its [[lti13.platforms]] entry
// and key file, as `ltigrade sync` would load them.
type agsBenchEnv struct {
	st       store.Store
	plat     *lmssim.Platform
	cfg      *config.Config
	sessions []*store.Launch
}

func newAGSBenchEnv(b *testing.B, n int) *agsBenchEnv {
	b.Helper()
	dir := b.TempDir()
	k, err := keys.Generate(2048)
	if err != nil {
		b.Fatal(err)
	}
	keyFile := filepath.Join(dir, "lti13.pem")
	if err := keys.WriteFile(keyFile, k, false); err != nil {
		b.Fatal(err)
	}
	plat := lmssim.NewPlatform(benchClientID, k.Public(), k.KeyID())
	plat.SetLatency(0)
	base, err := plat.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plat.Close() })
	lineitem := plat.AddLineItem("1", "rl-1")
	cfgFile := filepath.Join(dir, "config.toml")
	cfgText := fmt.Sprintf("database = %q\n[[lti13.platforms]]\nissuer = %q\nclient_id = %q\ntoken_url = %q\nprivate_key_file = %q\n",
		filepath.Join(dir, "ltigrade.db"), benchIssuer, benchClientID, base+"/token", keyFile)
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(config.Options{ConfigFlag: cfgFile, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(context.Background(), cfg.Database)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := &agsBenchEnv{st: st, plat: plat, cfg: cfg}
	now := time.Now()
	for i := range n {
		user := "user" + strconv.Itoa(i)
		e.sessions = append(e.sessions, &store.Launch{Username: user, Version: "1.3", Platform: benchIssuer,
			ClientID: benchClientID, DeploymentID: "dep-1", LTIUserID: "sub-" + user, ResourceLinkID: "rl-1",
			ResourceLinkTitle: "Homework 1", LineItem: lineitem, LineItems: base + "/lineitems",
			AGSScopes: []string{ags.ScopeScore, ags.ScopeResultReadOnly, ags.ScopeLineItemReadOnly},
			Checkout:  "materials", Opened: "materials/hw1/hw1.ipynb", OpenedFile: true, LaunchedAt: now,
			AuthState: []byte("{}")})
	}
	for i := 0; i < n; i += 10000 {
		if err := st.RecordLaunches(context.Background(), e.sessions[i:min(i+10000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// platform is what the CLI's App.platform does for every attempt: look the
// registration up in the config and load its key file.
func (e *agsBenchEnv) platform(issuer, clientID string) (ags.Platform, error) {
	p, err := e.cfg.Platform(issuer, clientID)
	if err != nil {
		return ags.Platform{}, err
	}
	k, err := keys.LoadFile(p.PrivateKeyFile)
	if err != nil {
		return ags.Platform{}, err
	}
	return ags.Platform{Issuer: p.Issuer, ClientID: p.ClientID, TokenURL: p.TokenURL, Audience: p.Audience,
		KeyID: k.KeyID(), Key: k.RSA()}, nil
}

// engine is what `ltigrade sync` builds for AGS passbacks: the real
// AGSSender, its client caching tokens in the store.
func (e *agsBenchEnv) engine(st store.Store, concurrency int, transport http.RoundTripper,
	platform func(issuer, clientID string) (ags.Platform, error)) *passback.Engine {
	return &passback.Engine{Store: st, Timeout: 20 * time.Second, Concurrency: concurrency,
		Sender: &passback.AGSSender{
			Client:   &ags.Client{HTTP: &http.Client{Transport: transport}, Cache: passback.StoreTokenCache{Store: e.st}},
			Platform: platform}}
}

// journal is benchEnv.journal for 'ags' passbacks, as `ltigrade score`
// builds them (internal/cli/score.go).
func (e *agsBenchEnv) journal(b *testing.B, batch int) {
	ctx := context.Background()
	for i := 0; i < len(e.sessions); i += batch {
		var ps []*store.Passback
		for j, l := range e.sessions[i:min(i+batch, len(e.sessions))] {
			given := float64((i + j) % 101)
			ps = append(ps, &store.Passback{SessionID: l.SessionID, LaunchID: l.ID, Username: l.Username,
				Notebook: "/home/jupyter-" + l.Username + "/materials/hw1/hw1.ipynb",
				Score:    strconv.FormatFloat(given/100, 'f', -1, 64), ScoreGiven: given, ScoreMax: 100,
				Protocol: "ags", TargetURL: l.LineItem, SourcedID: l.LTIUserID, ConsumerKey: l.Platform,
				ClientID: l.ClientID, LineItems: l.LineItems, ResourceLinkID: l.ResourceLinkID,
				ResultData: "autograded"})
		}
		if err := e.st.Enqueue(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAGSThroughput is BenchmarkPassbackThroughput/journal=100 for
// LTI 1.3: b.N 'ags' scores journaled 100 per Enqueue, drained with
// concurrency 8 by the real AGSSender and ags.Client (tokens cached in the
// store) against lmssim.Platform on loopback with no latency.
// token_requests is per run (not per op) and should be 1: one RS256
// assertion signed, every score sent with the cached token.
//
// Sub-benchmarks: key=per_attempt reads the config entry and key file for
// every send, as the CLI's sender does; key=cached hands the sender a parsed
// key, to show what that costs.
func BenchmarkAGSThroughput(b *testing.B) {
	b.Run("key=per_attempt", func(b *testing.B) {
		benchAGS(b, 100, 8, http.DefaultTransport, false)
	})
	b.Run("key=cached", func(b *testing.B) {
		benchAGS(b, 100, 8, http.DefaultTransport, true)
	})
}

func benchAGS(b *testing.B, batch, concurrency int, transport http.RoundTripper, cacheKey bool) {
	e := newAGSBenchEnv(b, b.N)
	platform := e.platform
	if cacheKey {
		p, err := e.platform(benchIssuer, benchClientID)
		if err != nil {
			b.Fatal(err)
		}
		platform = func(string, string) (ags.Platform, error) { return p, nil }
	}
	ts := &timedStore{Store: e.st}
	eng := e.engine(ts, concurrency, transport, platform)
	b.ResetTimer()
	t0 := time.Now()
	e.journal(b, batch)
	journaled := time.Since(t0)
	st, err := eng.Drain(context.Background(), true)
	b.StopTimer()
	drained := time.Since(t0) - journaled
	if err != nil {
		b.Fatal(err)
	}
	if st.Sent != b.N || st.Rejected != 0 || st.Retry != 0 {
		b.Fatalf("drain: %+v, want %d sent", st, b.N)
	}
	if got := len(e.plat.Scores()); got != b.N {
		b.Fatalf("platform holds %d scores, want %d", got, b.N)
	}
	if s, ok := e.plat.Score("1", "sub-user0"); !ok || s.ScoreMaximum != 100 {
		b.Fatalf("score of user0: %+v %v", s, ok)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passbacks/s")
	b.ReportMetric(float64(journaled.Nanoseconds())/float64(b.N), "journal_ns/op")
	b.ReportMetric(float64(drained.Nanoseconds())/float64(b.N), "drain_ns/op")
	b.ReportMetric(float64(ts.claimNs.Load())/float64(b.N), "claim_ns/op")
	b.ReportMetric(float64(ts.completeNs.Load())/float64(b.N), "complete_ns/op")
	b.ReportMetric(float64(e.plat.TokenRequests()), "token_requests")
}
