package grade

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/store"
)

// A roster of 1,000 members from the LTI 1.3 simulator (it checks the
// client assertion against the tool's key and pages NRPS 100 at a time):
// every member is read, mapped by email, and the inactive tenth is never
// "missing".
func TestRosterOfAThousandFromTheSimulator(t *testing.T) {
	k, err := keys.Generate(2048)
	if err != nil {
		t.Fatal(err)
	}
	plat := lmssim.NewPlatform("client-1", k.Public(), k.KeyID())
	base, err := plat.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plat.Close() })
	plat.SetPageSize(100)
	plat.SetMembers("c1", lmssim.SyntheticRoster(1000))
	g := local13(t, k, plat.Issuer(), plat.TokenURL(), "")
	st := g.Store
	auth, _ := json.Marshal(map[string]any{ags.ClaimNRPS: map[string]any{"context_memberships_url": plat.MembershipsURL("c1")}})
	first := fmt.Sprintf("s0001@%s", lmssim.EmailDomain)
	if _, err := st.RecordLaunch(context.Background(), &store.Launch{Username: first, Version: "1.3", Platform: plat.Issuer(),
		ClientID: "client-1", LTIUserID: "lms-0001", ResourceLinkID: "hw1", ResourceLinkTitle: "HW 1", ContextID: "c1",
		LineItem: base + "/lineitems/hw1", AGSScopes: []string{ags.ScopeScore}, LaunchedAt: time.Now(), AuthState: auth}); err != nil {
		t.Fatal(err)
	}
	reps, err := g.Roster(context.Background(), RosterRequest{})
	if err != nil || len(reps) != 1 {
		t.Fatalf("roster: %v %v", reps, err)
	}
	if n := len(reps[0].Members); n != 1000 {
		t.Fatalf("%d members, want 1000", n)
	}
	if got := plat.Requests(lmssim.RouteMemberships); got != 10 {
		t.Errorf("%d roster pages read, want 10", got)
	}
	mapped := 0
	for _, m := range reps[0].Members {
		if m.HubUser != "" && (m.MappedBy == "email" || m.MappedBy == "launch") {
			mapped++
		}
	}
	if mapped != 1000 {
		t.Errorf("%d of 1000 members mapped to hub users", mapped)
	}
	miss, err := g.Roster(context.Background(), RosterRequest{Missing: true})
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 less the inactive 100, less the one who launched.
	if n := len(miss[0].Members); n != 899 {
		t.Errorf("%d missing, want 899", n)
	}
	if got := plat.Requests(lmssim.RouteMemberships); got != 10 {
		t.Errorf("the second listing read the roster again (%d pages in all)", got)
	}
}
