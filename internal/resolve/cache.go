package resolve

import (
	"context"
	"sync"

	"github.com/ltigrade/ltigrade/internal/store"
)

// ManySessions is what a Cache reads: the resolver's reads, and the
// sessions of many users in one call.
type ManySessions interface {
	Sessions
	UsersSessions(ctx context.Context, usernames []string) (map[string][]store.Session, error)
}

// Cache answers a Resolver's reads for many notebooks at once (a batch of a
// class's scores): the users' sessions are fetched in a few queries by
// Prefetch, and what each course's and link's launches opened is read once
// per course or link instead of once per row. Without it a 20,000-row
// batch made a query per row for the user's sessions and again for each
// of their courses.
//
// It is a snapshot: launches recorded after a user was fetched are not
// seen until Forget. A batch resolves from one moment, as a single score
// does; the caller forgets a user whose sessions it changed itself.
type Cache struct {
	src ManySessions

	mu        sync.Mutex
	users     map[string][]store.Session // fetched users, nil slice when they have none
	prefixes  map[string][]string
	notebooks map[CourseKey][]store.CourseNotebook
	openings  map[LinkKey][]store.LinkOpening
}

// NewCache is an empty cache in front of src.
func NewCache(src ManySessions) *Cache {
	return &Cache{src: src, users: map[string][]store.Session{}, prefixes: map[string][]string{},
		notebooks: map[CourseKey][]store.CourseNotebook{}, openings: map[LinkKey][]store.LinkOpening{}}
}

var _ Sessions = (*Cache)(nil)

// Prefetch loads the sessions of usernames not fetched yet, in the store's
// chunked queries.
func (c *Cache) Prefetch(ctx context.Context, usernames []string) error {
	c.mu.Lock()
	var want []string
	for _, u := range usernames {
		if _, ok := c.users[u]; !ok {
			want = append(want, u)
		}
	}
	c.mu.Unlock()
	if len(want) == 0 {
		return nil
	}
	got, err := c.src.UsersSessions(ctx, want)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range want {
		c.users[u] = got[u]
	}
	return nil
}

// Forget drops what is known of username's sessions (the caller recorded
// one), so the next read fetches them again; and every username-prefix
// answer, which may now lack the user (a truncated TLJH name matching one
// user instead of two would resolve where it should be ambiguous).
func (c *Cache) Forget(username string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.users, username)
	clear(c.prefixes)
}

// UserSessions implements Sessions.
func (c *Cache) UserSessions(ctx context.Context, username string) ([]store.Session, error) {
	c.mu.Lock()
	ss, ok := c.users[username]
	c.mu.Unlock()
	if ok {
		return ss, nil
	}
	ss, err := c.src.UserSessions(ctx, username)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.users[username] = ss
	c.mu.Unlock()
	return ss, nil
}

// UsernamesWithPrefix implements Sessions.
func (c *Cache) UsernamesWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	return cached(c, c.prefixes, prefix, func() ([]string, error) { return c.src.UsernamesWithPrefix(ctx, prefix) })
}

// CourseNotebooks implements Sessions.
func (c *Cache) CourseNotebooks(ctx context.Context, platform, contextID string) ([]store.CourseNotebook, error) {
	return cached(c, c.notebooks, CourseKey{platform, contextID}, func() ([]store.CourseNotebook, error) {
		return c.src.CourseNotebooks(ctx, platform, contextID)
	})
}

// LinkOpenings implements Sessions.
func (c *Cache) LinkOpenings(ctx context.Context, platform, resourceLinkID string) ([]store.LinkOpening, error) {
	return cached(c, c.openings, LinkKey{platform, resourceLinkID}, func() ([]store.LinkOpening, error) {
		return c.src.LinkOpenings(ctx, platform, resourceLinkID)
	})
}

// cached reads m[k], filling it with load once (errors are not kept).
func cached[K comparable, V any](c *Cache, m map[K]V, k K, load func() (V, error)) (V, error) {
	c.mu.Lock()
	v, ok := m[k]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	m[k] = v
	c.mu.Unlock()
	return v, nil
}
