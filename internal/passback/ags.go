package passback

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/outcome"
	"github.com/ltigrade/ltigrade/internal/store"
)

// AGSSender sends passbacks as LTI 1.3 Assignment and Grade Services
// scores.
type AGSSender struct {
	Client *ags.Client
	// Platform returns the registration (with its key) of an issuer and
	// client id; read per attempt so a fixed config takes effect at once.
	Platform func(issuer, clientID string) (ags.Platform, error)
	// Found, if set, is told the line item looked up for a passback whose
	// launch named only the container, so it can be kept for next time.
	Found func(ctx context.Context, p *store.Passback, lineitem string)
}

// Send implements Sender.
func (s *AGSSender) Send(ctx context.Context, p *store.Passback) Outcome {
	plat, err := s.Platform(p.ConsumerKey, p.ClientID)
	if err != nil {
		// The config may be fixed later: keep the score queued. Nothing
		// was sent, so the outcome is certain.
		return Outcome{Status: store.StatusRetry, Message: err.Error(), Local: true}
	}
	lineitem := p.TargetURL
	if lineitem == "" {
		// The launch named only the line item container: find the item of
		// its resource link.
		lineitem, err = s.Client.FindLineItem(ctx, plat, p.LineItems, p.ResourceLinkID)
		if err != nil {
			var le *ags.LineItemError
			var ae *ags.Error
			switch {
			case errors.As(err, &le):
				return Outcome{Status: store.StatusRejected, Message: err.Error()}
			case errors.As(err, &ae):
				// The score itself was never sent: certain, whatever
				// became of the lookup.
				return fromAGS(ags.Outcome{Status: ae.Status, Message: ae.Message, HTTPStatus: ae.HTTPStatus,
					RetryAfter: ae.RetryAfter, NotSent: true})
			}
			return Outcome{Status: store.StatusRetry, Message: err.Error()}
		}
		if s.Found != nil {
			s.Found(ctx, p, lineitem)
		}
	}
	// The claim counts this attempt in p.Attempts: more than one means an
	// earlier attempt posted this very score (its timestamp is the row's
	// creation time), and may have delivered it with the reply lost.
	o := s.Client.PostScore(ctx, plat, lineitem, ags.Score{UserID: p.SourcedID, ScoreGiven: p.ScoreGiven,
		ScoreMaximum: p.ScoreMax, Comment: p.Comment, Timestamp: p.CreatedAt, Resent: p.Attempts > 1})
	return fromAGS(o)
}

// PlatformSuperseded reports whether a superseded row was refused by the
// platform as older than the score it holds, rather than superseded by
// ltigrade itself because a newer score of its session was journaled: only
// the platform's refusal leaves an HTTP status and the refusal's message
// (the store supersedes a row without touching either, so a row superseded
// after a failed attempt keeps that attempt's error).
func PlatformSuperseded(p *store.Passback) bool {
	return p.Status == store.StatusSuperseded && p.HTTPStatus != 0 && strings.HasPrefix(p.LastError, ags.SupersededMessage)
}

// fromAGS maps a score outcome; a score request written without an answer
// is uncertain, one never written (no token, refused) is not.
func fromAGS(o ags.Outcome) Outcome {
	out := Outcome{Status: storeStatus(o.Status), Message: o.Message, HTTPStatus: o.HTTPStatus, RetryAfter: o.RetryAfter,
		Uncertain: o.HTTPStatus == 0 && !o.NotSent}
	if out.Status != store.StatusRetry {
		out.Uncertain = false
	}
	return out
}

// Protocols sends each passback with the sender of its protocol.
type Protocols map[string]Sender

// Send implements Sender.
func (m Protocols) Send(ctx context.Context, p *store.Passback) Outcome {
	if s, ok := m[p.Protocol]; ok {
		return s.Send(ctx, p)
	}
	return Outcome{Status: store.StatusRejected, Message: "unknown protocol " + p.Protocol}
}

// StoreTokenCache keeps AGS tokens in the store, so the processes a grader
// hook starts one per student share one token.
type StoreTokenCache struct {
	Store store.Store
}

// Get implements ags.TokenCache.
func (c StoreTokenCache) Get(key string) (ags.Token, bool) {
	tok, exp, ok, err := c.Store.Token(context.Background(), key, time.Now())
	if err != nil || !ok {
		return ags.Token{}, false
	}
	return ags.Token{AccessToken: tok, Expiry: exp}, true
}

// Put implements ags.TokenCache. A failed write only costs a later token
// request.
func (c StoreTokenCache) Put(key string, t ags.Token) {
	_ = c.Store.PutToken(context.Background(), key, t.AccessToken, t.Expiry)
}

// storeStatus maps the clients' shared outcome vocabulary to a passback's
// status: the one place the two protocols meet the outbox.
func storeStatus(s outcome.Status) string {
	switch s {
	case outcome.Sent:
		return store.StatusSent
	case outcome.Superseded:
		return store.StatusSuperseded
	case outcome.Rejected:
		return store.StatusRejected
	}
	return store.StatusRetry
}
