package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/store/storetest"
)

// watchLMS is the LMS simulator behind a front that notices two requests
// for one sourcedId on the wire at once (two senders of one student's
// score), and can slow every request down or answer 503.
type watchLMS struct {
	sim     *lmssim.Sim
	mu      sync.Mutex
	onWire  map[string]int
	overlap []string
	delay   atomic.Int64 // extra latency per request, ns
	fail    atomic.Bool  // answer 503 without passing the request on
	inWire  atomic.Int64 // requests being handled now
	phase   atomic.Int64
}

var sourcedIDRe = regexp.MustCompile(`<sourcedId>([^<]*)</sourcedId>`)

func (l *watchLMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if l.fail.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	id := ""
	if m := sourcedIDRe.FindSubmatch(body); m != nil {
		id = string(m[1])
	}
	l.mu.Lock()
	if l.onWire[id]++; l.onWire[id] > 1 {
		l.overlap = append(l.overlap, fmt.Sprintf("%s (phase %d)", id, l.phase.Load()))
	}
	l.mu.Unlock()
	l.inWire.Add(1)
	defer func() {
		l.inWire.Add(-1)
		l.mu.Lock()
		l.onWire[id]--
		l.mu.Unlock()
	}()
	// The request is processed even if its sender is gone meanwhile: what
	// an LMS does with a request whose client died.
	time.Sleep(time.Duration(l.delay.Load()))
	l.sim.Handler().ServeHTTP(w, r)
}

// TestMultiHost: several hosts (each ltigrade process in a PID namespace
// of its own, `unshare --pid`, so that each has its own owner scope and no
// host can tell whether another's processes still run) record, score and
// sync concurrently on one PostgreSQL database, and one is killed with
// SIGKILL while its sync has requests on the wire. Afterwards every
// session's LMS value is its newest score, the LMS never had two requests
// of one student at once, and nothing is left undelivered.
func TestMultiHost(t *testing.T) {
	admin, why := storetest.AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL", "true").Run(); err != nil {
		t.Skipf("unshare --pid (needs root or user namespaces) failed: %v; the hosts need PID namespaces of their own", err)
	}
	bin, err := exec.LookPath("ltigrade")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dsn, drop, err := storetest.NewDatabase(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drop() })

	lms := &watchLMS{sim: lmssim.New(map[string]string{simKey: simSecret}), onWire: map[string]int{}}
	srv := httptest.NewServer(lms)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	u, _ := url.Parse(dsn)
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("db.pass", pw+"\n")
	write("course.secret", simSecret+"\n")
	cfg := write("config.toml", fmt.Sprintf(`database = %q
database_password_file = "db.pass"
[paths]
home = %q
[[lti11.consumers]]
key = %q
secret_file = "course.secret"
[passback]
timeout = "2s"
concurrency = 4
[hub]
spool_dir = %q
`, u.String(), filepath.Join(dir, "home", "jupyter-{username}"), simKey, filepath.Join(dir, "spool")))

	const hosts, students = 4, 8
	launch := func(s int) string {
		return write(fmt.Sprintf("launch-%d-%d.json", s, rand.IntN(1<<30)), fmt.Sprintf(
			`{"username":"s%d","consumer_key":%q,"next_url":"/hub/user-redirect/git-pull?repo=https%%3A%%2F%%2Fgithub.com%%2Fx%%2Fmaterials&urlpath=tree%%2Fmaterials%%2Fhw1%%2Fhw1.ipynb","auth_state":{"lti_version":"LTI-1p0","lti_message_type":"basic-lti-launch-request","user_id":"u%d","resource_link_id":"hw1","resource_link_title":"Homework 1","lis_outcome_service_url":"%s/outcomes","lis_result_sourcedid":"src-%d"}}`,
			s, simKey, s, srv.URL, s))
	}
	// host runs one ltigrade command as a process of host h: a hostname
	// and a PID namespace of its own (a host's identity in package owner;
	// the hostname also keeps a recycled namespace inode from passing a
	// process for one of another host).
	host := func(h int, args ...string) *exec.Cmd {
		cmd := exec.Command("unshare", append([]string{"--uts", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL",
			"sh", "-c", `hostname "$0" && exec "$@"`, fmt.Sprintf("ltigrade-host-%d", h), bin, "--config", cfg}, args...)...)
		cmd.Env = append(os.Environ(), "LTIGRADE_CONFIG=", "LTIGRADE_DB=")
		return cmd
	}
	run := func(h int, args ...string) (string, int) {
		out, err := host(h, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), pw) {
			t.Errorf("the database password was printed: %s", out)
		}
		return string(out), code
	}
	okCode := func(args []string, out string, code int, allowed ...int) {
		for _, a := range append(allowed, 0) {
			if code == a {
				return
			}
		}
		t.Errorf("ltigrade %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}

	// Every host records every student's launch, all at once.
	var wg sync.WaitGroup
	for h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range students {
				args := []string{"record", launch(s)}
				out, code := run(h, args...)
				okCode(args, out, code)
			}
		}()
	}
	wg.Wait()

	lms.phase.Store(1)
	// Phase 1: scores, syncs and more logins from every host at once.
	lms.delay.Store(int64(5 * time.Millisecond))
	for h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 8 {
				var args []string
				switch {
				case j%4 == 3:
					args = []string{"sync", "--now"}
				case j%4 == 2:
					args = []string{"record", launch(rand.IntN(students))}
				default:
					args = []string{"score", "--user", fmt.Sprintf("s%d", rand.IntN(students)), "materials/hw1/hw1.ipynb", fmt.Sprintf("0.%d%d", h+1, j)}
				}
				out, code := run(h, args...)
				okCode(args, out, code, 5)
			}
		}()
	}
	wg.Wait()

	lms.phase.Store(2)
	// Phase 2: the LMS is down; every student gets a newer score, queued.
	lms.fail.Store(true)
	for s := range students {
		args := []string{"score", "--user", fmt.Sprintf("s%d", s), "materials/hw1/hw1.ipynb", fmt.Sprintf("0.9%d", s)}
		out, code := run(s%hosts, args...)
		okCode(args, out, code, 5)
	}
	lms.fail.Store(false)
	// One host's sync sends them, slowly; it is killed with its requests
	// on the wire.
	lms.delay.Store(int64(1500 * time.Millisecond))
	victim := host(0, "sync", "--now")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for lms.inWire.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if lms.inWire.Load() == 0 {
		victim.Process.Kill()
		victim.Wait()
		t.Fatal("the victim's sync never sent")
	}
	victim.Process.Kill()
	victim.Wait()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM passbacks WHERE status = 'sending'`)
	if err != nil {
		t.Fatal(err)
	}
	leased, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(leased) == 0 {
		t.Fatalf("the killed sync left no row in flight (%v): the kill was not mid-send", err)
	}
	var leasedUsers []string
	conn.QueryRow(ctx, `SELECT array_agg(username ORDER BY id) FROM passbacks WHERE id = ANY($1)`, leased).Scan(&leasedUsers)
	// The first of them gets a newer score at once: it must wait until the
	// killed host's lease has ended (the LMS may still be processing the
	// old request), then win. The others' rows must themselves go again.
	lms.delay.Store(int64(5 * time.Millisecond))
	newer := leasedUsers[0]
	args := []string{"score", "--user", newer, "materials/hw1/hw1.ipynb", "0.55"}
	out, code := run(1, args...)
	okCode(args, out, code, 5)
	leased, leasedUsers = leased[1:], leasedUsers[1:]

	lms.phase.Store(3)
	// Phase 3: the other hosts carry on (more scores, syncs) until the
	// killed host's leases run out and everything is delivered.
	lms.delay.Store(int64(5 * time.Millisecond))
	for h := 1; h < hosts; h++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				// Not the students whose rows the killed host holds:
				// those rows themselves must be sent again.
				user := fmt.Sprintf("s%d", (h*3+j)%students)
				if slices.Contains(leasedUsers, user) {
					continue
				}
				args := []string{"score", "--user", user, "materials/hw1/hw1.ipynb", fmt.Sprintf("0.7%d%d", h, j)}
				out, code := run(h, args...)
				okCode(args, out, code, 5)
			}
		}()
	}
	wg.Wait()
	var open int
	for i := 0; i < 40; i++ {
		for h := 1; h < hosts; h++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := []string{"sync", "--now"}
				out, code := run(h, args...)
				okCode(args, out, code, 5)
			}()
		}
		wg.Wait()
		conn.QueryRow(ctx, `SELECT COUNT(*) FROM passbacks WHERE status IN ('pending','retry','sending')`).Scan(&open)
		if open == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if open > 0 {
		t.Fatalf("%d scores still undelivered", open)
	}

	// Newest wins, per session: the LMS holds the score of the session's
	// last journaled row, and that row was sent.
	rows, err = conn.Query(ctx, `SELECT DISTINCT ON (session_id) sourcedid, score, status FROM passbacks ORDER BY session_id, id DESC`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var sid, score, status string
		if err := rows.Scan(&sid, &score, &status); err != nil {
			t.Fatal(err)
		}
		n++
		g, ok := lms.sim.Grade(sid)
		if status != "sent" || !ok || g.Score != score {
			t.Errorf("%s: newest score %s (%s), LMS holds %q", sid, score, status, g.Score)
		}
	}
	if n != students {
		t.Errorf("%d sessions with scores, want %d", n, students)
	}
	// The killed host's rows were sent again by the others once their
	// leases ended.
	var resent int
	conn.QueryRow(ctx, `SELECT COUNT(*) FROM passbacks WHERE id = ANY($1) AND attempts > 1 AND status = 'sent'`, leased).Scan(&resent)
	if resent != len(leased) {
		t.Errorf("%d of the %d rows the killed host held were sent again", resent, len(leased))
	}
	lms.mu.Lock()
	defer lms.mu.Unlock()
	if len(lms.overlap) > 0 {
		t.Errorf("two requests of one student on the wire at once: %v", lms.overlap)
	}
}
