package resolve

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/paths"
	"github.com/ltigrade/ltigrade/internal/store"
)

// countingSessions is a store of a few users that counts its reads.
type countingSessions struct {
	users                          map[string][]store.Session
	many, one, notebooks, openings int
}

func (c *countingSessions) UsersSessions(ctx context.Context, names []string) (map[string][]store.Session, error) {
	c.many++
	out := map[string][]store.Session{}
	for _, u := range names {
		if ss, ok := c.users[u]; ok {
			out[u] = ss
		}
	}
	return out, nil
}

func (c *countingSessions) UserSessions(ctx context.Context, u string) ([]store.Session, error) {
	c.one++
	return c.users[u], nil
}

func (c *countingSessions) UsernamesWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	return nil, nil
}

func (c *countingSessions) CourseNotebooks(ctx context.Context, platform, contextID string) ([]store.CourseNotebook, error) {
	c.notebooks++
	var out []store.CourseNotebook
	for _, ss := range c.users {
		for _, s := range ss {
			if s.OpenedFile {
				out = append(out, store.CourseNotebook{Path: s.Opened, ResourceLinkID: s.ResourceLinkID})
			}
		}
	}
	return out, nil
}

func (c *countingSessions) LinkOpenings(ctx context.Context, platform, link string) ([]store.LinkOpening, error) {
	c.openings++
	return nil, nil
}

// Resolving many users' notebooks through a Cache reads the sessions in
// one call and each course's facts once, with the same answers as the
// store itself gives; Forget makes the next read go to the store.
func TestCacheResolvesManyWithFewReads(t *testing.T) {
	src := &countingSessions{users: map[string][]store.Session{}}
	var names []string
	for i := range 50 {
		u := fmt.Sprintf("s%02d", i)
		names = append(names, u)
		for j, link := range []string{"hw1", "hw2"} {
			s := sess(int64(i*2+j+1), link, "materials", "materials/"+link+"/"+link+".ipynb", true, time.Duration(j)*time.Hour)
			s.Username = u
			src.users[u] = append(src.users[u], s)
		}
	}
	layout := paths.Layout{Home: "/home/{username}"}
	direct := &Resolver{Store: src, Layout: layout}
	want := map[string]int64{}
	for _, u := range names {
		res, err := direct.Resolve(context.Background(), "materials/hw2/hw2.ipynb", u)
		if err != nil {
			t.Fatal(err)
		}
		want[u] = res.Match.Session.ID
	}
	*src = countingSessions{users: src.users}
	c := NewCache(src)
	if err := c.Prefetch(context.Background(), append(names, "nobody")); err != nil {
		t.Fatal(err)
	}
	cached := &Resolver{Store: c, Layout: layout}
	for _, u := range names {
		res, err := cached.Resolve(context.Background(), "materials/hw2/hw2.ipynb", u)
		if err != nil {
			t.Fatal(err)
		}
		if res.Match.Session.ID != want[u] {
			t.Errorf("%s: session %d through the cache, %d without", u, res.Match.Session.ID, want[u])
		}
	}
	if _, err := cached.Resolve(context.Background(), "materials/hw2/hw2.ipynb", "nobody"); err == nil {
		t.Error("a user without sessions resolved")
	}
	if src.many != 1 || src.one != 0 || src.notebooks != 1 {
		t.Errorf("reads: %d UsersSessions, %d UserSessions, %d CourseNotebooks; want 1, 0, 1", src.many, src.one, src.notebooks)
	}
	c.Forget("s07")
	if _, err := cached.Resolve(context.Background(), "materials/hw2/hw2.ipynb", "s07"); err != nil || src.one != 1 {
		t.Errorf("after Forget: %v, %d UserSessions reads, want 1", err, src.one)
	}
}
