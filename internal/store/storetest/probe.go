package storetest

import (
	"slices"
	"testing"

	"github.com/ltigrade/ltigrade/internal/store"
)

// testProber: doctor's write probe succeeds on a fresh store and leaves
// nothing behind (a second probe and the schema check see the same
// database), and OutcomeURLs lists each stored outcome service once.
func testProber(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	p, ok := s.(store.Prober)
	if !ok {
		t.Fatalf("%T is not a store.Prober", s)
	}
	before, err := s.(store.Migrator).SchemaStatus(bg)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.CheckWritable(bg); err != nil {
			t.Fatalf("CheckWritable on a fresh store: %v", err)
		}
	}
	after, err := s.(store.Migrator).SchemaStatus(bg)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the probe changed the store: %+v, then %+v", before, after)
	}
	if urls, err := p.OutcomeURLs(bg, 10); err != nil || len(urls) != 0 {
		t.Errorf("OutcomeURLs of an empty store = %q, %v", urls, err)
	}
	now := now0()
	a, bl, c := MkLaunch("alice", "hw1", now), MkLaunch("bob", "hw1", now), MkLaunch("carol", "hw2", now)
	c.OutcomeURL = "https://other.example/outcomes"
	lti13 := MkLaunch("dave", "hw3", now)
	lti13.OutcomeURL = ""
	for _, l := range []*store.Launch{a, bl, c, lti13} {
		record(t, s, l)
	}
	urls, err := p.OutcomeURLs(bg, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://lms/outcomes", "https://other.example/outcomes"}; !slices.Equal(urls, want) {
		t.Errorf("OutcomeURLs = %q, want %q", urls, want)
	}
	if urls, _ := p.OutcomeURLs(bg, 1); len(urls) != 1 {
		t.Errorf("OutcomeURLs with limit 1 = %q", urls)
	}
}
