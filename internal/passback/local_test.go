package passback

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/store"
)

// A secret that cannot be loaded fails the attempt on this host: a retry
// (never rejected, never uncertain, as no byte left) marked Local.
func TestSendersClassifyLocalFailure(t *testing.T) {
	noSecret := errors.New(`config: consumer "k": secret file /s has mode 0644; it must not be readable or writable by group or others (chmod 600 /s)`)
	l11 := &LTI11Sender{Client: &lti11.Client{}, Secret: func(string) (string, error) { return "", noSecret }}
	a13 := &AGSSender{Client: &ags.Client{}, Platform: func(string, string) (ags.Platform, error) { return ags.Platform{}, noSecret }}
	for name, o := range map[string]Outcome{
		"lti11": l11.Send(context.Background(), &store.Passback{Protocol: "lti11", TargetURL: "http://127.0.0.1:1/outcomes", ConsumerKey: "k"}),
		"ags":   a13.Send(context.Background(), &store.Passback{Protocol: "ags", TargetURL: "http://127.0.0.1:1/lineitems/1", ConsumerKey: "iss"}),
	} {
		if o.Status != store.StatusRetry || !o.Local || o.Uncertain || o.Message != noSecret.Error() {
			t.Errorf("%s: %+v, want a certain local retry with the reason", name, o)
		}
	}
}

// After a local failure the row is due again at once: the next sync (which
// honours backoff) sends it as soon as the fix is in, since the LMS was
// never asked and has nothing to back off from.
func TestLocalFailureDueAtOnce(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	sess := session(t, s, "alice")
	id := journal(t, s, sess, "0.65")
	broken := &Engine{Store: s, Timeout: 5 * time.Second, Sender: SenderFunc(func(context.Context, *store.Passback) Outcome {
		return Outcome{Status: store.StatusRetry, Local: true, Message: "secret file has mode 0644"}
	})}
	got, err := broken.SendNow(context.Background(), []int64{id}, time.Second)
	if err != nil || got[0].Status != store.StatusRetry || got[0].LastError != "secret file has mode 0644" {
		t.Fatalf("after the local failure: %+v, %v", got, err)
	}
	lms := &fakeLMS{}
	fixed := &Engine{Store: s, Timeout: 5 * time.Second, Sender: SenderFunc(func(_ context.Context, p *store.Passback) Outcome {
		lms.set(p)
		return Outcome{Status: store.StatusSent}
	})}
	st, err := fixed.Drain(context.Background(), false)
	if err != nil || st.Sent != 1 || lms.grades["alice"] != "0.65" {
		t.Fatalf("sync after the fix: %+v, %v, LMS %v", st, err, lms.grades)
	}
}
