package cli

import (
	"strings"
	"testing"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/store"
)

// A score the platform refused as older than the one it holds is not one
// a newer journaled score replaced: the text says which happened.
func TestPrintScoreSuperseded(t *testing.T) {
	cases := []struct {
		name string
		p    store.Passback
		want string
	}{
		{"refused by the platform", store.Passback{ID: 7, Username: "alice", Score: "0.1", Protocol: "ags",
			Status: store.StatusSuperseded, HTTPStatus: 409,
			LastError: ags.SupersededMessage + " (HTTP 409): Refusing score with an earlier timestamp for item 1 and user 2"},
			"superseded: the platform already holds a newer score for alice; it refused 0.1 (passback 7) as older\n"},
		{"a newer row journaled", store.Passback{ID: 8, Username: "alice", Score: "0.2", Protocol: "ags",
			Status: store.StatusSuperseded, HTTPStatus: 503, LastError: "platform temporarily unavailable (HTTP 503)"},
			"superseded: a newer score for alice was journaled meanwhile; 0.2 (passback 8) will not be sent\n"},
		{"lti 1.1, a newer row journaled", store.Passback{ID: 9, Username: "bob", Score: "0.3", Protocol: "lti11",
			Status: store.StatusSuperseded},
			"superseded: a newer score for bob was journaled meanwhile; 0.3 (passback 9) will not be sent\n"},
	}
	for _, tc := range cases {
		app, out, _ := testApp()
		printScore(app, &grade.ScoreResult{Passback: &tc.p})
		if out.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, out.String(), tc.want)
		}
		if strings.Contains(tc.name, "platform") && strings.Contains(out.String(), "journaled meanwhile") {
			t.Errorf("%s: says a newer score was journaled", tc.name)
		}
	}
}
