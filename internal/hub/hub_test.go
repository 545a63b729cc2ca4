package hub

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// python is the interpreter for the hook's tests: $LTIGRADE_PYTHON (set by
// `make test`) or python3. The hook needs nothing outside the standard
// library, so either will do.
func python(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LTIGRADE_PYTHON"); p != "" {
		return p
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found; the JupyterHub hook tests need it (apt-get install python3)")
	}
	return p
}

func opts() Options {
	return Options{Binary: "/usr/local/bin/ltigrade", Config: "/etc/ltigrade/config.toml",
		SpoolDir: "/var/lib/ltigrade/spool", Timeout: 5 * time.Second}
}

// compiles fails the test unless src is valid Python.
func compiles(t *testing.T, src []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ltigrade.py")
	if err := os.WriteFile(f, src, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python(t), "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())", f).CombinedOutput()
	if err != nil {
		t.Fatalf("rendered hook is not valid Python: %v\n%s", err, out)
	}
}

func TestRenderCompiles(t *testing.T) {
	o := opts()
	o.Config = `/etc/ltigrade/my "quoted" \ config ' é.toml`
	o.Database = "/srv/db/ltigrade.db"
	o.Timeout = 2500 * time.Millisecond
	o.Version = "v1.2.3"
	src, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	compiles(t, src)
	for _, want := range []string{
		`LTIGRADE = "/usr/local/bin/ltigrade"`,
		`LTIGRADE_ARGS = ["--config","/etc/ltigrade/my \"quoted\" \\ config ' é.toml","--db","/srv/db/ltigrade.db"]`,
		`LTIGRADE_SPOOL_DIR = "/var/lib/ltigrade/spool"`,
		"LTIGRADE_TIMEOUT = 2.5\n",
		`LTIGRADE_VERSION = "v1.2.3"`,
	} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("rendered hook lacks %s", want)
		}
	}
	// Python must read back exactly the values given.
	f := filepath.Join(t.TempDir(), "h.py")
	os.WriteFile(f, src, 0o644)
	out, err := exec.Command(python(t), "-c", `import ast,sys,json
vals = {}
for n in ast.parse(open(sys.argv[1]).read()).body:
    if isinstance(n, ast.Assign) and n.targets[0].id.startswith("LTIGRADE"):
        vals[n.targets[0].id] = ast.literal_eval(n.value)
print(json.dumps(vals, sort_keys=True))`, f).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"LTIGRADE": "/usr/local/bin/ltigrade", "LTIGRADE_ARGS": ["--config", "/etc/ltigrade/my \"quoted\" \\ config ' \u00e9.toml", "--db", "/srv/db/ltigrade.db"], "LTIGRADE_SPOOL_DIR": "/var/lib/ltigrade/spool", "LTIGRADE_TIMEOUT": 2.5, "LTIGRADE_VERSION": "v1.2.3"}`
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("Python reads\n%s\nwant\n%s", out, want)
	}
}

func TestRenderWithoutConfig(t *testing.T) {
	o := opts()
	o.Config, o.SpoolDir = "", ""
	src, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("LTIGRADE_ARGS = []\n")) || !bytes.Contains(src, []byte(`LTIGRADE_SPOOL_DIR = ""`)) {
		t.Errorf("want no --config and no spool dir:\n%s", src)
	}
	compiles(t, src)
}

func TestRenderRefusesHostileValues(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"newline in binary":     func(o *Options) { o.Binary = "/bin/ltigrade\nimport os; os.system('x')" },
		"carriage return":       func(o *Options) { o.Config = "/etc/x\r.toml" },
		"NUL in spool":          func(o *Options) { o.SpoolDir = "/var/spool\x00x" },
		"invalid UTF-8":         func(o *Options) { o.Config = "/etc/\xff.toml" },
		"relative binary":       func(o *Options) { o.Binary = "ltigrade" },
		"relative config":       func(o *Options) { o.Config = "config.toml" },
		"relative spool":        func(o *Options) { o.SpoolDir = "spool" },
		"relative database":     func(o *Options) { o.Database = "ltigrade.db" },
		"no binary":             func(o *Options) { o.Binary = "" },
		"zero timeout":          func(o *Options) { o.Timeout = 0 },
		"timeout over 1 minute": func(o *Options) { o.Timeout = 2 * time.Minute },
	} {
		o := opts()
		mod(&o)
		if src, err := Render(o); err == nil {
			t.Errorf("%s: rendered\n%s", name, src)
		}
	}
}

func TestInstallIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	src, err := Render(opts())
	if err != nil {
		t.Fatal(err)
	}
	path, changed, err := Install(dir, src)
	if err != nil || !changed || path != filepath.Join(dir, "ltigrade.py") {
		t.Fatalf("first install: %s %v %v", path, changed, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if _, changed, err := Install(dir, src); err != nil || changed {
		t.Fatalf("second install: changed=%v %v", changed, err)
	}
	// a different snippet, or the right one with the wrong mode, is rewritten
	o := opts()
	o.Timeout = time.Second
	src2, _ := Render(o)
	if _, changed, err := Install(dir, src2); err != nil || !changed {
		t.Fatalf("changed snippet: changed=%v %v", changed, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, src2) {
		t.Error("file does not hold the new snippet")
	}
	os.Chmod(path, 0o600)
	if _, changed, err := Install(dir, src2); err != nil || !changed {
		t.Fatalf("wrong mode: changed=%v %v", changed, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestInstallNeedsTheDirectory(t *testing.T) {
	if _, _, err := Install(filepath.Join(t.TempDir(), "missing"), []byte("x")); err == nil || !strings.Contains(err.Error(), "--config-dir") {
		t.Errorf("missing directory: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, _, err := Install(f, []byte("x")); err == nil {
		t.Error("a file as directory was accepted")
	}
}

// TestHookPython runs testdata/test_hook.py against the snippet rendered
// with a fake ltigrade: chaining, the launch JSON, spooling on failure and
// timeout, non-LTI logins, and the pre-spawn environment.
func TestHookPython(t *testing.T) {
	py := python(t)
	tmp := t.TempDir()
	fake, _ := filepath.Abs(filepath.Join("testdata", "fake_ltigrade.py"))
	bin := filepath.Join(tmp, "ltigrade")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec '"+py+"' '"+fake+"' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Binary: bin, Config: "/etc/ltigrade/hub config.toml", SpoolDir: filepath.Join(tmp, "spool"), Timeout: 10 * time.Second}
	src, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(tmp, "ltigrade.py")
	if err := os.WriteFile(hook, src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-W", "error::RuntimeWarning", filepath.Join("testdata", "test_hook.py"), "-v")
	cmd.Env = append(os.Environ(), "HOOK="+hook, "HOOK_CONFIG="+o.Config, "HOOK_SPOOL_DIR="+o.SpoolDir, "HOOK_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test_hook.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestParseInstalledReadsBackRender(t *testing.T) {
	o := opts()
	o.Config = `/etc/ltigrade/my "quoted" config.toml`
	o.Database = "/srv/db/ltigrade.db"
	o.Version = "v1.2.3"
	src, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInstalled(src)
	if err != nil {
		t.Fatal(err)
	}
	want := Installed{Binary: o.Binary, Config: o.Config, Database: o.Database, SpoolDir: o.SpoolDir, Version: "v1.2.3"}
	if in != want {
		t.Errorf("ParseInstalled = %+v, want %+v", in, want)
	}
	// A hook from before the version was kept has no LTIGRADE_VERSION line.
	old := regexp.MustCompile(`(?m)^LTIGRADE_VERSION = .*\n`).ReplaceAll(src, nil)
	if in, err := ParseInstalled(old); err != nil || in.Version != "" {
		t.Errorf("old hook: %+v, %v; want no version and no error", in, err)
	}
	// An edited file is refused.
	edited := bytes.Replace(src, []byte(`LTIGRADE = "`), []byte(`LTIGRADE = '`), 1)
	if _, err := ParseInstalled(edited); err == nil {
		t.Error("a hand-edited LTIGRADE line was accepted")
	}
}
