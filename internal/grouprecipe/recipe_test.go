// Package grouprecipe tests the grader-group recipe of docs/jupyterhub.md
// ("Graders without root") with real unprivileged users: two graders in a
// shared group record, ingest the hub's spool, score and sync against one
// database, and the LMS receives every score. It needs root (to create the
// users), useradd/userdel/groupadd/groupdel and setpriv; without them it
// skips, saying so. CI runs as root.
package grouprecipe

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ltigrade/ltigrade/internal/cli"
	"github.com/ltigrade/ltigrade/internal/lmssim"
)

// TestMain lets the test binary, copied where the graders can run it, be
// ltigrade.
func TestMain(m *testing.M) {
	if os.Getenv("LTIGRADE_RECIPE_MAIN") == "1" {
		os.Exit(cli.Main())
	}
	os.Exit(m.Run())
}

const (
	consumerKey = "canvas-ds100"
	secret      = "recipe-s3cr3t-0xFEED"
)

type recipe struct {
	t          *testing.T
	root       string // o+x, so the graders reach what is inside
	bin, cfg   string
	envFile    string
	lib, spool string
	group      string
	gid        int
	graders    map[string][2]int // name -> uid, gid
	lms        string
}

func need(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the grader-group recipe test runs as root only: it creates two users and a group (CI runs it as root)")
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel", "setpriv", "install"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the grader-group recipe test needs %s: %v", tool, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func setup(t *testing.T) *recipe {
	need(t)
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	r := &recipe{t: t, group: "ltgtest-g-" + suffix, graders: map[string][2]int{}}
	// Removed even when the test fails: registered before they exist.
	names := []string{"ltgtest-a-" + suffix, "ltgtest-b-" + suffix}
	t.Cleanup(func() {
		for _, n := range names {
			exec.Command("userdel", n).Run()
			exec.Command("groupdel", n).Run() // the user's own group, if userdel left it
		}
		exec.Command("groupdel", r.group).Run()
	})
	run(t, "groupadd", r.group)
	g, err := user.LookupGroup(r.group)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscan(g.Gid, &r.gid)
	for _, n := range names {
		// Their own primary group, the shared one as a supplementary group:
		// without the setgid folder their files would get their own group.
		run(t, "useradd", "--no-create-home", "--user-group", "--groups", r.group, "--shell", "/usr/sbin/nologin", n)
		u, err := user.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		var uid, gid int
		fmt.Sscan(u.Uid, &uid)
		fmt.Sscan(u.Gid, &gid)
		r.graders[n] = [2]int{uid, gid}
	}

	sim := lmssim.New(map[string]string{consumerKey: secret})
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	r.lms = base
	lmsSim = sim

	r.root = t.TempDir()
	for _, d := range []string{filepath.Dir(r.root), r.root} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	// The binary: this test binary, which is ltigrade when
	// LTIGRADE_RECIPE_MAIN=1 (see TestMain), where the graders can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r.bin = filepath.Join(r.root, "ltigrade")
	copyFile(t, self, r.bin, 0o755)

	// The recipe, as docs/jupyterhub.md gives it (paths moved into the
	// temporary folder).
	etc := filepath.Join(r.root, "etc")
	r.lib = filepath.Join(r.root, "lib")
	r.spool = filepath.Join(r.lib, "spool")
	r.cfg = filepath.Join(etc, "config.toml")
	r.envFile = filepath.Join(etc, "lms.env")
	db := filepath.Join(r.lib, "ltigrade.db")
	run(t, "install", "-d", "-m", "0755", etc)
	run(t, "install", "-d", "-m", "2770", "-o", "root", "-g", r.group, r.lib, r.spool)
	run(t, "install", "-m", "0660", "-o", "root", "-g", r.group, "/dev/null", db)
	run(t, "install", "-m", "0640", "-o", "root", "-g", r.group, "/dev/null", r.envFile)
	run(t, "sh", "-c", `printf 'CANVAS_DS100_SECRET=%s\n' "$1" > "$2"`, "sh", secret, r.envFile)
	cfg := fmt.Sprintf("database = %q\n\n[paths]\nhome = %q\n\n[[lti11.consumers]]\nkey = %q\nsecret_env = \"CANVAS_DS100_SECRET\"\n\n[passback]\ntimeout = \"5s\"\n",
		db, filepath.Join(r.root, "home", "jupyter-{username}"), consumerKey)
	if err := os.WriteFile(r.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"alice", "bob", "carol", "bad1", "bad2"} {
		launch := fmt.Sprintf(`{"username": %q, "consumer_key": %q,
 "next_url": "/hub/user-redirect/git-pull?repo=https%%3A%%2F%%2Fgithub.com%%2Fexample%%2Fmaterials&urlpath=tree%%2Fmaterials%%2Fhw1%%2Fhw1.ipynb",
 "auth_state": {"lti_message_type": "basic-lti-launch-request", "lti_version": "LTI-1p0", "user_id": "u-%s",
   "resource_link_id": "hw1", "lis_outcome_service_url": "%s/outcomes", "lis_result_sourcedid": "src-%s"}}`, s, consumerKey, s, r.lms, s)
		if strings.HasPrefix(s, "bad") {
			launch = `{"consumer_key": "canvas-ds100", "auth_state": {"lti_version": "LTI-1p0", "user_id": "x", "resource_link_id": "r"}}`
		}
		if err := os.WriteFile(filepath.Join(r.root, s+".json"), []byte(launch), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

var lmsSim *lmssim.Sim

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// as runs ltigrade as a grader (or as root, the hub's user, for "root"),
// with the secret read from the group's environment file as the recipe's
// profile line does. Graders run with umask 077: the recipe must not rest
// on theirs.
func (r *recipe) as(who string, args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	script := `umask 077; set -a; . "$1"; set +a; shift; exec "$@"`
	var argv []string
	if who == "root" {
		script = `umask 022; set -a; . "$1"; set +a; shift; exec "$@"`
	} else {
		ids := r.graders[who]
		argv = []string{"setpriv", fmt.Sprintf("--reuid=%d", ids[0]), fmt.Sprintf("--regid=%d", ids[1]), "--init-groups", "--"}
	}
	argv = append(argv, "sh", "-c", script, "sh", r.envFile, r.bin, "--config", r.cfg)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = r.root
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + r.root, "LANG=C.UTF-8", "LTIGRADE_RECIPE_MAIN=1"}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		r.t.Fatalf("%s: %v", who, err)
	}
	r.t.Logf("as %s: ltigrade %s: exit %d\n%s%s", who, strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

// ok runs ltigrade as who and fails unless it exits 0 with no sign of a
// permission problem.
func (r *recipe) ok(who string, args ...string) (stdout, stderr string) {
	r.t.Helper()
	stdout, stderr, code := r.as(who, args...)
	if code != 0 {
		r.t.Fatalf("as %s, ltigrade %s exited %d:\n%s", who, strings.Join(args, " "), code, stderr)
	}
	for _, bad := range []string{"permission denied", "readonly", "read-only", "not ingested"} {
		if strings.Contains(strings.ToLower(stderr), bad) {
			r.t.Errorf("as %s, ltigrade %s: %s", who, strings.Join(args, " "), stderr)
		}
	}
	return stdout, stderr
}

// hookSpools writes a launch into the spool as the hub's hook does in a
// spool folder open to a group: owned by root, mode 0640.
func (r *recipe) hookSpools(name, launchFile string) {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.root, launchFile))
	if err != nil {
		r.t.Fatal(err)
	}
	p := filepath.Join(r.spool, name)
	if err := os.WriteFile(p, data, 0o640); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		r.t.Fatal(err)
	}
}

func (r *recipe) grader(i int) string {
	for n := range r.graders {
		if strings.HasPrefix(n, fmt.Sprintf("ltgtest-%c-", 'a'+i)) {
			return n
		}
	}
	r.t.Fatal("no such grader")
	return ""
}

func TestGraderGroupRecipe(t *testing.T) {
	r := setup(t)
	a, b := r.grader(0), r.grader(1)

	// Both graders write the database (each may be the one that creates
	// its -wal and -shm).
	r.ok(a, "record", filepath.Join(r.root, "alice.json"))
	r.ok(b, "record", filepath.Join(r.root, "bob.json"))

	// The hub (root) spooled carol's launch and an invalid one; grader A's
	// sync records the first and moves the other to failed/, which it
	// creates; grader B can move the next invalid one there too.
	r.hookSpools("20261125T100000.000000Z-cccc.json", "carol.json")
	r.hookSpools("20261125T100001.000000Z-bad1.json", "bad1.json")
	out, stderr := r.ok(a, "sync")
	if !strings.Contains(out, "ingested 1 spooled launch") || !strings.Contains(stderr, "bad1.json") {
		t.Errorf("grader A's sync did not ingest the hub's spool:\n%s%s", out, stderr)
	}
	r.hookSpools("20261125T100002.000000Z-bad2.json", "bad2.json")
	_, stderr = r.ok(b, "sync")
	if !strings.Contains(stderr, "spooled launch failed/20261125T100002.000000Z-bad2.json") {
		t.Errorf("grader B's sync did not move the invalid launch to failed/:\n%s", stderr)
	}
	if left, _ := os.ReadDir(r.spool); len(left) != 1 || left[0].Name() != "failed" {
		t.Errorf("spool holds %v", left)
	}

	// Scores from both graders, for launches recorded by either and by the hub.
	r.ok(a, "score", "--user", "alice", "materials/hw1/hw1.ipynb", "0.8")
	r.ok(b, "score", "--user", "bob", "materials/hw1/hw1.ipynb", "0.7")
	r.ok(b, "score", "--user", "carol", "materials/hw1/hw1.ipynb", "0.9")
	out, _ = r.ok(a, "sessions", "list", "--all", "--json")
	if n := strings.Count(out, `"launch_id"`); n != 3 {
		t.Errorf("grader A sees %d sessions, want 3:\n%s", n, out)
	}
	r.ok(b, "passbacks", "list")
	r.ok(a, "sync")
	// The hub's own runs (its hook and cron) still work beside them.
	r.ok("root", "record", "--spool")
	r.ok("root", "sync")

	for src, want := range map[string]string{"src-alice": "0.8", "src-bob": "0.7", "src-carol": "0.9"} {
		if g, ok := lmsSim.Grade(src); !ok || g.Score != want {
			t.Errorf("LMS holds %+v for %s, want %s", g, src, want)
		}
	}

	// What the recipe promises on disk: group-writable database files of
	// the shared group, whoever created them, and a failed/ folder the
	// group can use.
	for _, name := range []string{"ltigrade.db", "ltigrade.db-wal", "ltigrade.db-shm"} {
		fi, err := os.Stat(filepath.Join(r.lib, name))
		if os.IsNotExist(err) && name != "ltigrade.db" {
			continue // removed when the last connection closed
		}
		if err != nil {
			t.Fatal(err)
		}
		if gid := int(fi.Sys().(*syscall.Stat_t).Gid); gid != r.gid || fi.Mode().Perm() != 0o660 {
			t.Errorf("%s: gid %d mode %04o, want gid %d mode 0660", name, gid, fi.Mode().Perm(), r.gid)
		}
	}
	fi, err := os.Stat(filepath.Join(r.spool, "failed"))
	if err != nil {
		t.Fatal(err)
	}
	if gid := int(fi.Sys().(*syscall.Stat_t).Gid); gid != r.gid || fi.Mode().Perm() != 0o770 || fi.Mode()&fs.ModeSetgid == 0 {
		t.Errorf("failed/: gid %d mode %v, want the group's, 2770", gid, fi.Mode())
	}
}
