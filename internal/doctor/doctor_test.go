package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/hub"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/store"
)

const secretValue = "s3cr3t-doctor-never-printed-0xBEEF"

// world is a set-up in a temporary directory: a config with one consumer
// whose secret is in a 0600 file, and a migrated SQLite database.
type world struct {
	dir, cfgFile, secretFile, db string
}

func newWorld(t *testing.T, extra string) *world {
	t.Helper()
	w := &world{dir: t.TempDir()}
	w.secretFile = filepath.Join(w.dir, "course.secret")
	w.db = filepath.Join(w.dir, "var", "ltigrade.db")
	w.cfgFile = filepath.Join(w.dir, "config.toml")
	write(t, w.secretFile, secretValue+"\n", 0o600)
	write(t, w.cfgFile, fmt.Sprintf("database = %q\n%s\n[[lti11.consumers]]\nkey = \"course-key\"\nsecret_file = %q\n",
		w.db, extra, w.secretFile), 0o600)
	return w
}

func (w *world) migrate(t *testing.T) {
	t.Helper()
	st, err := store.Open(context.Background(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

func (w *world) config(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Options{ConfigFlag: w.cfgFile, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// find returns the one check of that name (and subject, if given).
func find(t *testing.T, cs []Check, name string) Check {
	t.Helper()
	var got []Check
	for _, c := range cs {
		if c.Name == name {
			got = append(got, c)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d checks named %s in %+v", len(got), name, cs)
	}
	return got[0]
}

func want(t *testing.T, c Check, status Status, detail, hint string) {
	t.Helper()
	if c.Status != status || c.OK != (status != StatusFail) {
		t.Errorf("%s: status %s (ok %v), want %s: %s", c.Name, c.Status, c.OK, status, c.Detail)
	}
	if !strings.Contains(c.Detail, detail) {
		t.Errorf("%s: detail %q lacks %q", c.Name, c.Detail, detail)
	}
	if !strings.Contains(c.Hint, hint) {
		t.Errorf("%s: hint %q lacks %q", c.Name, c.Hint, hint)
	}
	if status == StatusFail && c.Hint == "" {
		t.Errorf("%s failed without a hint", c.Name)
	}
}

func TestConfig(t *testing.T) {
	w := newWorld(t, "")
	want(t, CheckConfig(w.config(t), nil), StatusOK, "1 LTI 1.1 consumer", "")

	// A syntax error, as Load reports it.
	write(t, w.cfgFile, "database = \n", 0o600)
	_, err := config.Load(config.Options{ConfigFlag: w.cfgFile})
	if err == nil {
		t.Fatal("a broken config loaded")
	}
	want(t, CheckConfig(nil, err), StatusFail, w.cfgFile, "")

	// An inline secret in a file others can read is refused by Load.
	write(t, w.cfgFile, "[[lti11.consumers]]\nkey = \"k\"\nsecret = \""+secretValue+"\"\n", 0o644)
	_, err = config.Load(config.Options{ConfigFlag: w.cfgFile})
	c := CheckConfig(nil, err)
	want(t, c, StatusFail, "inline secret", "chmod 600 "+w.cfgFile)
	if strings.Contains(c.Detail+c.Hint, secretValue) {
		t.Error("the config check shows the inline secret")
	}

	// Nothing to sign for.
	write(t, w.cfgFile, "database = \"x.db\"\n", 0o600)
	cfg, err := config.Load(config.Options{ConfigFlag: w.cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	want(t, CheckConfig(cfg, nil), StatusFail, "no [[lti11.consumers]]", "add the LMS")

	// Writable by the group: loads, with a warning.
	write(t, w.cfgFile, "[[lti11.consumers]]\nkey = \"k\"\nsecret_env = \"X\"\n", 0o664)
	cfg, err = config.Load(config.Options{ConfigFlag: w.cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	want(t, CheckConfig(cfg, nil), StatusWarn, "writable by group", "chmod go-w")
}

func TestSecrets(t *testing.T) {
	key, err := keys.Generate(2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pem := filepath.Join(dir, "lti13.pem")
	if err := keys.WriteFile(pem, key, false); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, fmt.Sprintf("[[lti13.platforms]]\nissuer = \"https://lms.example\"\nclient_id = \"c1\"\ntoken_url = \"https://lms.example/token\"\nprivate_key_file = %q\n", pem))
	cs := CheckSecrets(w.config(t))
	want(t, find(t, cs, "consumer_secret"), StatusOK, "secret_file "+w.secretFile, "")
	want(t, find(t, cs, "platform_key"), StatusOK, key.KeyID(), "")

	os.Chmod(w.secretFile, 0o640)
	os.Chmod(pem, 0o644)
	cs = CheckSecrets(w.config(t))
	want(t, find(t, cs, "consumer_secret"), StatusFail, "mode 0640", "chmod 600 "+w.secretFile)
	want(t, find(t, cs, "platform_key"), StatusFail, "mode 0644", "chmod 600 "+pem)

	os.Remove(w.secretFile)
	os.Remove(pem)
	cs = CheckSecrets(w.config(t))
	want(t, find(t, cs, "consumer_secret"), StatusFail, "no such file", "create "+w.secretFile)
	want(t, find(t, cs, "platform_key"), StatusFail, "no such file", "ltigrade keys generate --out "+pem)
	if c := find(t, cs, "consumer_secret"); c.Subject != "course-key" {
		t.Errorf("subject %q, want the consumer key", c.Subject)
	}
}

// unwritable makes path impossible to change for this process, root
// included: mode 0444 stops other users, the immutable attribute root.
func unwritable(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return
	}
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Skipf("root, and chattr +i fails here (%v: %s): cannot make a file root cannot write", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
}

func TestDatabase(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "")
	cfg := w.config(t)

	cs, st := CheckDatabase(ctx, cfg)
	if st != nil {
		t.Fatal("a store was opened for a database that does not exist")
	}
	want(t, find(t, cs, "database"), StatusFail, w.db+" does not exist", "database in "+w.cfgFile)
	want(t, find(t, cs, "database_schema"), StatusSkip, "", "")
	if _, err := os.Stat(w.db); err == nil {
		t.Fatal("doctor created the database")
	}

	// A file nobody migrated: it opens, but has no schema.
	write(t, w.db, "", 0o600)
	cs, st = CheckDatabase(ctx, cfg)
	st.Close()
	want(t, find(t, cs, "database"), StatusOK, "SQLite "+w.db, "")
	want(t, find(t, cs, "database_schema"), StatusFail, "schema version 0 of", "ltigrade db migrate")
	want(t, find(t, cs, "database_writable"), StatusSkip, "needs a migrated schema", "")

	w.migrate(t)
	cs, st = CheckDatabase(ctx, cfg)
	st.Close()
	want(t, find(t, cs, "database_schema"), StatusOK, "(latest); 0 launches, 0 scores queued", "")
	want(t, find(t, cs, "database_writable"), StatusOK, "rolled back", "")

	// The probe leaves nothing behind: the schema is still exactly current.
	cs, st = CheckDatabase(ctx, cfg)
	st.Close()
	want(t, find(t, cs, "database_schema"), StatusOK, "(latest)", "")

	unwritable(t, w.db)
	cs, st = CheckDatabase(ctx, cfg)
	if st != nil {
		st.Close()
	}
	// SQLite opens a file it cannot write read-only; the write fails.
	want(t, find(t, cs, "database_writable"), StatusFail, "readonly", "must be able to write "+w.db)
}

func TestSpool(t *testing.T) {
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "spool")
	want(t, find(t, CheckSpool(dir, now), "spool"), StatusOK, "empty", "")
	want(t, find(t, CheckSpool("", now), "spool"), StatusWarn, "no hub.spool_dir", "set hub.spool_dir")

	launch := filepath.Join(dir, "20261202T101500Z-ab12.json")
	write(t, launch, `{"username":"alice"}`, 0o600)
	os.Chmod(dir, 0o700)
	cs := CheckSpool(dir, now)
	want(t, find(t, cs, "spool"), StatusOK, "1 launch waiting", "")

	old := now.Add(-BacklogMaxAge - time.Minute)
	os.Chtimes(launch, old, old)
	want(t, find(t, CheckSpool(dir, now), "spool"), StatusFail, "the oldest for 11m0s", "run `ltigrade sync`")

	// Dot files are the hook's temporary files, not a backlog.
	os.Remove(launch)
	write(t, filepath.Join(dir, ".tmp-1.part"), "{", 0o600)
	want(t, find(t, CheckSpool(dir, now), "spool"), StatusOK, "empty", "")

	write(t, filepath.Join(dir, "failed", "20261201T000000Z-cd34.json"), "{", 0o600)
	cs = CheckSpool(dir, now)
	want(t, find(t, cs, "spool_failed"), StatusWarn, "1 launch refused", "ltigrade record FILE")

	os.Chmod(dir, 0o777)
	want(t, find(t, CheckSpool(dir, now), "spool"), StatusFail, "writable by others", "chmod o-w "+dir)
}

func TestHook(t *testing.T) {
	w := newWorld(t, "")
	cfg := w.config(t)
	bin := filepath.Join(w.dir, "bin", "ltigrade")
	write(t, bin, "#!/bin/sh\n", 0o755)
	confd := filepath.Join(w.dir, "confd")

	want(t, CheckHook(confd, false, cfg, bin, "v1.2.0"), StatusSkip, "no JupyterHub config directory", "")
	want(t, CheckHook(confd, true, cfg, bin, "v1.2.0"), StatusFail, "config directory "+confd+" does not exist", "--hub-config-dir")

	os.Mkdir(confd, 0o755)
	want(t, CheckHook(confd, true, cfg, bin, "v1.2.0"), StatusFail, "ltigrade.py does not exist", "sudo "+bin+" --config "+w.cfgFile+" hub install --config-dir "+confd)

	install := func(o hub.Options) {
		t.Helper()
		if o.Timeout == 0 {
			o.Timeout = 5 * time.Second
		}
		src, err := hub.Render(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := hub.Install(confd, src); err != nil {
			t.Fatal(err)
		}
	}
	install(hub.Options{Binary: bin, Config: w.cfgFile, Version: "v1.2.0"})
	want(t, CheckHook(confd, true, cfg, bin, "v1.2.0"), StatusOK, "runs this ltigrade (v1.2.0) with --config "+w.cfgFile, "")

	// Written by another release.
	want(t, CheckHook(confd, true, cfg, bin, "v1.3.0"), StatusFail, "written by ltigrade v1.2.0, this is v1.3.0", "hub install")

	// Written before hooks kept their version.
	path := filepath.Join(confd, hub.FileName)
	src, _ := os.ReadFile(path)
	var kept []string
	for _, l := range strings.Split(string(src), "\n") {
		if !strings.HasPrefix(l, "LTIGRADE_VERSION = ") {
			kept = append(kept, l)
		}
	}
	write(t, path, strings.Join(kept, "\n"), 0o644)
	want(t, CheckHook(confd, true, cfg, bin, "v1.2.0"), StatusFail, "older than v1.2.0", "hub install")

	// Another binary, which is gone, and another config.
	install(hub.Options{Binary: "/opt/old/ltigrade", Config: "/etc/ltigrade/other.toml", Version: "v1.2.0"})
	c := CheckHook(confd, true, cfg, bin, "v1.2.0")
	want(t, c, StatusFail, "runs /opt/old/ltigrade, which does not exist", "hub install")
	want(t, c, StatusFail, "passes --config /etc/ltigrade/other.toml, but this check loaded "+w.cfgFile, "")

	// Installed right, but the group may change it.
	install(hub.Options{Binary: bin, Config: w.cfgFile, Version: "v1.2.0"})
	os.Chmod(path, 0o664)
	want(t, CheckHook(confd, true, cfg, bin, "v1.2.0"), StatusFail, "writable by group or others (mode 0664)", "chmod 644 "+path)
}

func TestTimer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	systemd := filepath.Join(dir, "run-systemd")
	os.Mkdir(systemd, 0o755)
	fake := func(enabled, active string) func(context.Context, ...string) (string, error) {
		return func(_ context.Context, args ...string) (string, error) {
			if len(args) != 2 || args[1] != SyncUnit {
				t.Errorf("systemctl %v", args)
			}
			if args[0] == "is-enabled" {
				return enabled + "\n", nil
			}
			return active + "\n", nil
		}
	}
	cron := filepath.Join(dir, "cron.d")
	os.Mkdir(cron, 0o755)
	base := Timer{SystemdDir: systemd, CronFiles: []string{filepath.Join(cron, "*")}, Example: "*/5 * * * * root ltigrade sync"}

	tm := base
	tm.Systemctl = fake("enabled", "active")
	want(t, CheckTimer(ctx, tm), StatusOK, "ltigrade-sync.timer is enabled and active", "")
	tm.Systemctl = fake("enabled", "inactive")
	want(t, CheckTimer(ctx, tm), StatusWarn, "inactive", "systemctl start")
	tm.Systemctl = fake("disabled", "inactive")
	want(t, CheckTimer(ctx, tm), StatusFail, "ltigrade-sync.timer is disabled", "systemctl enable --now ltigrade-sync.timer")

	// No systemd: cron decides. A comment or another command is not a timer.
	tm = base
	tm.SystemdDir = filepath.Join(dir, "nosystemd")
	tm.Systemctl = func(context.Context, ...string) (string, error) {
		t.Error("systemctl run without systemd")
		return "", nil
	}
	write(t, filepath.Join(cron, "ltigrade"), "# */5 * * * * root /usr/bin/ltigrade sync\n*/5 * * * * root /usr/bin/ltigrade syncthing\n", 0o644)
	want(t, CheckTimer(ctx, tm), StatusFail, "systemd is not running here", "/etc/cron.d/ltigrade: */5 * * * * root ltigrade sync")
	write(t, filepath.Join(cron, "ltigrade"), "SHELL=/bin/sh\n*/5 * * * * root /usr/bin/ltigrade --config /etc/ltigrade/config.toml sync\n", 0o644)
	want(t, CheckTimer(ctx, tm), StatusOK, "cron: "+filepath.Join(cron, "ltigrade")+": */5 * * * * root /usr/bin/ltigrade --config", "")
	// A cron line's credentials stay out of the report.
	write(t, filepath.Join(cron, "ltigrade"), "*/5 * * * * root PGPASSWORD=hunter2 LTIGRADE_DB=postgres://u:pw123@db/x /usr/bin/ltigrade --db postgres://v:pw456@db/y sync\n", 0o644)
	c := CheckTimer(ctx, tm)
	if c.Status != StatusOK || strings.Contains(c.Detail, "hunter2") || strings.Contains(c.Detail, "pw123") || strings.Contains(c.Detail, "pw456") || !strings.Contains(c.Detail, "ltigrade --db postgres://v:") {
		t.Errorf("cron line with credentials: %+v", c)
	}

	os.Remove(filepath.Join(cron, "ltigrade"))
	tm.Crontab = func(context.Context) (string, error) { return "*/10 * * * * ltigrade sync --now\n", nil }
	want(t, CheckTimer(ctx, tm), StatusOK, "crontab -l: */10 * * * * ltigrade sync --now", "")
}

// TestNoSecretInReport runs every check against a set-up with a secret
// file, broken and whole, and looks for the secret in the report.
func TestNoSecretInReport(t *testing.T) {
	w := newWorld(t, "")
	w.migrate(t)
	for _, mode := range []os.FileMode{0o600, 0o644} {
		os.Chmod(w.secretFile, mode)
		r := Run(context.Background(), Setup{Config: w.config(t), Binary: "/usr/bin/ltigrade", Version: "v1",
			HubConfigDir: filepath.Join(w.dir, "none"), Timer: Timer{CronFiles: []string{w.secretFile}}})
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secretValue) || strings.Contains(fmt.Sprintf("%+v", r), secretValue) {
			t.Errorf("mode %04o: the report holds the secret: %s", mode, b)
		}
		if c := find(t, r.Checks, "consumer_secret"); c.OK != (mode == 0o600) {
			t.Errorf("mode %04o: consumer_secret ok = %v", mode, c.OK)
		}
		if r.OK {
			t.Errorf("mode %04o: report ok without a sync timer", mode)
		}
	}
}

// TestSkip: a check named in Setup.Skip is reported as skipped, keeps its
// subject, and no longer fails the report; the others still run.
func TestSkip(t *testing.T) {
	w := newWorld(t, "")
	w.migrate(t)
	setup := Setup{Config: w.config(t), Binary: "/usr/bin/ltigrade", Version: "v1",
		HubConfigDir: filepath.Join(w.dir, "none"), Timer: Timer{CronFiles: []string{filepath.Join(w.dir, "no-cron")}}}
	before := Run(context.Background(), setup)
	if c := find(t, before.Checks, "sync_timer"); c.Status != StatusFail {
		t.Fatalf("set-up without a timer: sync_timer %s", c.Status)
	}
	setup.Skip = []string{"sync_timer"}
	after := Run(context.Background(), setup)
	c := find(t, after.Checks, "sync_timer")
	if c.Status != StatusSkip || !c.OK || !strings.Contains(c.Detail, "--skip") {
		t.Fatalf("skipped sync_timer: %+v", c)
	}
	if len(after.Checks) != len(before.Checks) {
		t.Fatalf("%d checks with --skip, %d without", len(after.Checks), len(before.Checks))
	}
	for i, c := range after.Checks {
		if c.Name != "sync_timer" && c.Status != before.Checks[i].Status {
			t.Errorf("%s changed from %s to %s though not skipped", c.Name, before.Checks[i].Status, c.Status)
		}
	}
	wantOK := true
	for _, c := range after.Checks {
		if c.Status == StatusFail {
			wantOK = false
		}
	}
	if after.OK != wantOK {
		t.Errorf("report ok = %v with checks %+v", after.OK, after.Checks)
	}
	for _, c := range before.Checks {
		if !slices.Contains(Names, c.Name) {
			t.Errorf("check %q is missing from Names (--skip would refuse it)", c.Name)
		}
	}
}
