// Package grade holds ltigrade's grading use cases: resolve a notebook to
// its launch, check the launch can take a score, journal it, send it,
// preview it, batch many, read the LMS's result, sync the outbox. The CLI
// calls them directly (Local) or through the grading service (a remote
// Grader); the service's HTTP handlers call the same Local. So a score
// behaves the same wherever it is given, and every failure maps to one
// exit code (ExitCode) on every path.
package grade

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Grader is what the commands need, locally or through the service.
type Grader interface {
	Sessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error)
	Resolve(ctx context.Context, r ResolveRequest) (*resolve.Result, error)
	Score(ctx context.Context, r ScoreRequest) (*ScoreResult, error)
	Batch(ctx context.Context, r BatchRequest, progress func(status string)) (*BatchReport, error)
	Passbacks(ctx context.Context, f store.PassbackFilter) ([]store.Passback, error)
	Sync(ctx context.Context, r SyncRequest) (*SyncReport, error)
}

// Local runs the use cases against this machine's store and config.
type Local struct {
	Store  store.Store
	Config *config.Config
	Now    func() time.Time
	// HTTP returns the client for LMS requests, keeping idle connections
	// for that many concurrent senders; nil means a default.
	HTTP func(senders int) *http.Client
	// CatchUp records the launches the hub hook spooled and nobody has
	// recorded yet; it runs before every resolve. Nil: no spool.
	CatchUp func(ctx context.Context)
	// Cwd anchors relative notebook paths without a user; "" means the
	// process's working directory.
	Cwd string
	// GradingOff, if set, says why this process does not grade
	// submissions; Submit then refuses them.
	GradingOff string
	// OnSubmit, if set, is called after a submission is journaled (the
	// service wakes a grading worker).
	OnSubmit func()
	// OnSend, if set, is told the outcome of every attempt to deliver a
	// score this process makes (the service's metrics).
	OnSend func(p *store.Passback, o passback.Outcome)
	// Warn receives warnings that belong to no one result (a spool it
	// cannot read, a launch recorded with a warning); nil drops them.
	Warn func(string)
}

var _ Grader = (*Local)(nil)

func (g *Local) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Local) httpClient(senders int) *http.Client {
	if g.HTTP != nil {
		return g.HTTP(senders)
	}
	// TLS verification stays on: the default transport verifies.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, g.Config.Passback.Concurrency, senders)
	return &http.Client{Transport: t}
}

// Sessions lists sessions (or launches).
func (g *Local) Sessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	ss, err := g.Store.ListSessions(ctx, f)
	if err == nil {
		g.withLabels(ctx, ss)
	}
	return ss, err
}

// Passbacks lists the outbox.
func (g *Local) Passbacks(ctx context.Context, f store.PassbackFilter) ([]store.Passback, error) {
	return g.Store.ListPassbacks(ctx, f)
}

// ResolveRequest names a notebook: an absolute path, or one relative to
// User's notebook root (or, without User, to Cwd).
type ResolveRequest struct {
	Notebook string `json:"notebook"`
	User     string `json:"user,omitempty"`
	// Cwd anchors a relative Notebook without User (the caller's working
	// directory); empty means the resolver's own.
	Cwd string `json:"cwd,omitempty"`
}

// Resolve finds the launch a notebook's score belongs to, after catching
// up with the hub's spool. A student who never launched the assignment is
// placed through the course's roster as a score would be (Via "roster"),
// without recording anything.
func (g *Local) Resolve(ctx context.Context, r ResolveRequest) (*resolve.Result, error) {
	res, err := g.resolveOwn(ctx, r)
	if nf, ok := asNotFound(err); ok && len(nf.Tried) == 1 {
		_, rres, rerr := g.viaRoster(ctx, nf.Tried[0].Username, nf.Tried[0].Rel, nf, false)
		return rres, rerr
	}
	return res, err
}

// resolveOwn resolves a notebook to the student's own launches.
func (g *Local) resolveOwn(ctx context.Context, r ResolveRequest) (*resolve.Result, error) {
	if g.CatchUp != nil {
		g.CatchUp(ctx)
	}
	return g.resolveFrom(ctx, r, g.Store)
}

// resolveFrom is resolveOwn reading from src (a batch's cache) without
// catching up with the spool (the batch did, once).
func (g *Local) resolveFrom(ctx context.Context, r ResolveRequest, src resolve.Sessions) (*resolve.Result, error) {
	cwd := r.Cwd
	if cwd == "" {
		cwd = g.Cwd
	}
	rv := &resolve.Resolver{Store: src, Layout: g.Config.Paths.Layout(), Cwd: cwd}
	res, err := rv.Resolve(ctx, r.Notebook, r.User)
	if res != nil {
		if res.Match.Session.Origin == "roster" {
			// A session made from the roster earlier: still not a launch.
			res.Via = "roster"
		}
		one := []store.Session{res.Match.Session}
		g.withLabels(ctx, one)
		res.Match.Session = one[0]
	}
	return res, err
}

// Target finds the session a command acts on: launch (an explicit choice)
// when set, else what the notebook resolves to.
func (g *Local) Target(ctx context.Context, r ResolveRequest, launchID int64) (*store.Session, *resolve.Result, error) {
	if launchID == 0 && g.CatchUp != nil {
		g.CatchUp(ctx)
	}
	return g.target(ctx, r, launchID, g.Store)
}

// target is Target reading the student's own sessions from src, without
// catching up with the spool.
func (g *Local) target(ctx context.Context, r ResolveRequest, launchID int64, src resolve.Sessions) (*store.Session, *resolve.Result, error) {
	if launchID == 0 {
		res, err := g.resolveFrom(ctx, r, src)
		if nf, ok := asNotFound(err); ok && len(nf.Tried) == 1 {
			// Not the student's own launch: an LTI 1.3 roster may still
			// place it (a student who never launched the assignment).
			sess, res, err := g.viaRoster(ctx, nf.Tried[0].Username, nf.Tried[0].Rel, nf, true)
			if f, isCache := src.(interface{ Forget(username string) }); isCache && err == nil {
				// It recorded a session for the student: a batch's next
				// row of theirs must see it.
				f.Forget(sess.Username)
			}
			return sess, res, err
		}
		if err != nil {
			return nil, nil, err
		}
		s := res.Match.Session
		return &s, res, nil
	}
	l, err := g.Store.Launch(ctx, launchID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, WithCode(ExitNoSession, fmt.Errorf("no launch %d", launchID), "list launches with: ltigrade sessions list --all")
	}
	if err != nil {
		return nil, nil, err
	}
	sess, err := g.Store.Session(ctx, l.SessionID)
	if err != nil {
		return nil, nil, err
	}
	// Send to the outcome target of the launch asked for, under its session.
	sess.Launch = *l
	sess.LaunchID = l.ID
	return sess, nil, nil
}

// Preflight checks that the session can take a score: an LTI 1.1 outcome
// service with a known consumer, or an LTI 1.3 AGS endpoint with a
// configured platform. A *config.SecretUnavailableError means the target
// is configured but its secret or key cannot be loaded right now: a score
// can still be journaled, and waits in the queue for the fix.
func (g *Local) Preflight(s *store.Session) error {
	return g.preflight(s, g.secret, g.Platform)
}

// preflight is Preflight loading secrets and keys through secret and
// platform (a batch's memo).
func (g *Local) preflight(s *store.Session, secret func(key string) (config.Secret, error), platform func(issuer, clientID string) (ags.Platform, error)) error {
	if s.Version == "1.3" {
		return g.agsPreflight(s, platform)
	}
	if s.OutcomeURL == "" || s.SourcedID == "" {
		return WithCode(ExitNoSession, fmt.Errorf("launch %d of %s has no outcome service: the LMS did not ask for grades on %q", s.LaunchID, s.Username, s.ResourceLinkTitle),
			"make the LMS assignment graded (it then sends lis_outcome_service_url) and have the student launch it again")
	}
	if _, err := secret(s.Platform); err != nil {
		return consumerErr(err)
	}
	return nil
}

// consumerErr refuses a score the config can never sign (no such consumer)
// and passes on a secret that is only unavailable for now.
func consumerErr(err error) error {
	if _, ok := SecretUnavailable(err); ok {
		return err
	}
	return WithCode(ExitUsage, err, "") // the hint comes with the error's kind
}

// SecretUnavailable says whether err is a configured consumer's secret or
// platform's key that cannot be loaded now (a loose mode, a missing file, an
// unset variable).
func SecretUnavailable(err error) (*config.SecretUnavailableError, bool) {
	var su *config.SecretUnavailableError
	return su, errors.As(err, &su)
}

func (g *Local) agsPreflight(s *store.Session, platform func(issuer, clientID string) (ags.Platform, error)) error {
	if s.LineItem == "" && s.LineItems == "" {
		return WithCode(ExitNoSession, fmt.Errorf("launch %d of %s has no grade service: the platform sent no AGS endpoint claim for %q", s.LaunchID, s.Username, s.ResourceLinkTitle),
			"enable Assignment and Grade Services for the tool in the LMS, make the link graded, and have the student launch it again")
	}
	if len(s.AGSScopes) > 0 && !hasScope(s.AGSScopes, ags.ScopeScore) {
		return WithCode(ExitNoSession, fmt.Errorf("launch %d of %s does not grant the AGS score scope", s.LaunchID, s.Username), "add the score scope to the tool's registration in the LMS")
	}
	if _, err := platform(s.Platform, s.ClientID); err != nil {
		if _, ok := SecretUnavailable(err); ok {
			return err
		}
		return WithCode(ExitUsage, err, "add the platform to [[lti13.platforms]] and its key with `ltigrade keys generate`")
	}
	return nil
}

func hasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if s == want {
			return true
		}
	}
	return false
}

// Platform loads an LTI 1.3 registration with its private key. A key that
// cannot be loaded is a *config.SecretUnavailableError: the platform is
// configured, and scores for it can wait for the fix.
func (g *Local) Platform(issuer, clientID string) (ags.Platform, error) {
	p, err := g.Config.Platform(issuer, clientID)
	if err != nil {
		return ags.Platform{}, err
	}
	k, err := keys.LoadFile(p.PrivateKeyFile)
	if err != nil {
		return ags.Platform{}, &config.SecretUnavailableError{Hint: KeyFileHint(p.PrivateKeyFile), Err: err}
	}
	kid := p.KeyID
	if kid == "" {
		kid = k.KeyID()
	}
	return ags.Platform{Issuer: p.Issuer, ClientID: p.ClientID, TokenURL: p.TokenURL, Audience: p.Audience,
		KeyID: kid, Key: k.RSA(), Canvas: p.Canvas}, nil
}

// platformWithoutKey is the registration of an issuer and client id as
// configured, without loading its key (a preview needs no signature).
func (g *Local) platformWithoutKey(issuer, clientID string) (ags.Platform, error) {
	p, err := g.Config.Platform(issuer, clientID)
	if err != nil {
		return ags.Platform{}, err
	}
	return ags.Platform{Issuer: p.Issuer, ClientID: p.ClientID, TokenURL: p.TokenURL, Audience: p.Audience,
		KeyID: p.KeyID, Canvas: p.Canvas}, nil
}

// AGSClient is an AGS client whose tokens are shared through the store by
// every ltigrade process (one token request per score would get the tool
// rate-limited).
func (g *Local) AGSClient(senders int) *ags.Client {
	return &ags.Client{HTTP: g.httpClient(senders), Cache: passback.StoreTokenCache{Store: g.Store}}
}

// Sender sends passbacks of either protocol with senders kept-alive
// connections per LMS host.
func (g *Local) Sender(senders int) passback.Sender {
	return g.senderWith(senders, g.secret, g.Platform)
}

// senderWith is Sender loading secrets and keys through secret and
// platform.
func (g *Local) senderWith(senders int, secret func(key string) (config.Secret, error), platform func(issuer, clientID string) (ags.Platform, error)) passback.Sender {
	st := g.Store
	agsSender := &passback.AGSSender{Client: g.AGSClient(senders), Platform: platform,
		Found: func(ctx context.Context, p *store.Passback, lineitem string) {
			// Best effort: a failed write only costs another lookup.
			_ = st.SetLineItem(ctx, p.LaunchID, p.SessionID, lineitem)
		}}
	return passback.Protocols{
		"lti11": &passback.LTI11Sender{Client: &lti11.Client{HTTP: g.httpClient(senders)}, Secret: func(key string) (string, error) {
			// Revealed here, for the signer, and nowhere else.
			s, err := secret(key)
			if err != nil {
				return "", err
			}
			return s.Reveal(), nil
		}},
		"ags": agsSender,
	}
}

func (g *Local) secret(key string) (config.Secret, error) { return g.Config.ConsumerSecret(key) }

// engine is the outbox engine with this config, sending with sender.
func (g *Local) engine(senders int, sender passback.Sender) *passback.Engine {
	return &passback.Engine{Store: g.Store, Timeout: g.Config.Passback.Timeout, Concurrency: max(senders, 1),
		Now: g.now, Sender: sender, Observe: g.OnSend}
}

// loadMemo remembers, for one batch, what loading each consumer's secret
// and each platform's key gave: read from disk once per batch instead of
// once per row and again per send (a tenth of a large batch's time). A
// batch acts at one moment, as it resolves from one snapshot; the next
// command reads the files afresh. Nothing here is printed.
type loadMemo struct {
	g         *Local
	mu        sync.Mutex
	secrets   map[string]secretLoad
	platforms map[[2]string]platformLoad
}

type secretLoad struct {
	s   config.Secret // redacts itself if ever printed; revealed only by the sender
	err error
}

type platformLoad struct {
	p   ags.Platform
	err error
}

func (g *Local) newLoadMemo() *loadMemo {
	return &loadMemo{g: g, secrets: map[string]secretLoad{}, platforms: map[[2]string]platformLoad{}}
}

func (m *loadMemo) secret(key string) (config.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.secrets[key]
	if !ok {
		l.s, l.err = m.g.secret(key)
		m.secrets[key] = l
	}
	return l.s, l.err
}

func (m *loadMemo) platform(issuer, clientID string) (ags.Platform, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{issuer, clientID}
	l, ok := m.platforms[k]
	if !ok {
		l.p, l.err = m.g.Platform(issuer, clientID)
		m.platforms[k] = l
	}
	return l.p, l.err
}
