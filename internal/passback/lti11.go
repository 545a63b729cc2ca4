package passback

import (
	"context"
	"strconv"
	"time"

	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/store"
)

// LTI11Sender sends passbacks as Basic Outcomes replaceResult requests.
type LTI11Sender struct {
	Client *lti11.Client
	// Secret returns the consumer secret for a key. It is called per
	// attempt so a rotated secret file takes effect at once.
	Secret func(key string) (string, error)
}

// Send implements Sender.
func (s *LTI11Sender) Send(ctx context.Context, p *store.Passback) Outcome {
	secret, err := s.Secret(p.ConsumerKey)
	if err != nil {
		// The config may be fixed later: keep the score queued. Nothing
		// was sent, so the outcome is certain.
		return Outcome{Status: store.StatusRetry, Message: err.Error(), Local: true}
	}
	req := lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: p.SourcedID, Score: p.Score,
		ResultDataText: p.ResultData, MessageID: "ltigrade-" + strconv.FormatInt(p.ID, 10)}
	if p.SubmittedAt != "" {
		if t, err := time.Parse(time.RFC3339Nano, p.SubmittedAt); err == nil {
			req.SubmittedAt = &t
		}
	}
	o := s.Client.Do(ctx, p.TargetURL, p.ConsumerKey, secret, req)
	// No HTTP answer to a request that was written: it may have reached
	// the LMS. One that never left holds nothing back.
	return Outcome{Status: storeStatus(o.Status), Message: o.Message, HTTPStatus: o.HTTPStatus, RetryAfter: o.RetryAfter,
		Uncertain: o.HTTPStatus == 0 && !o.NotSent}
}
