// Package packaging tests the .deb and .rpm that scripts/package.sh builds
// with nfpm from packaging/nfpm.yaml: every file with its owner and mode, the
// conffile, the maintainer scripts, the example config, the static binary of
// each architecture, lintian, goreleaser.yaml's nfpms section, and a real
// install, upgrade, removal and purge of the .deb with dpkg in a throwaway
// root (an overlay of the host's /usr in a private mount namespace).
//
// Tools it lacks (dpkg-deb, rpm, lintian) are installed with apt-get when the
// test runs as root; a test skips, saying why, only when that is impossible
// (not root, no apt, no network) or, for nfpm, when the Go module proxy is
// unreachable (scripts/package.sh exit 3).
package packaging

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The versions the test builds: an upgrade goes from the first to the second.
const (
	version1 = "v0.9.1"
	version2 = "v0.9.2"
)

var (
	repo    string // the repository root
	workDir string // packages, extracted trees, throwaway roots
)

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repo = filepath.Dir(wd)
	workDir, err = os.MkdirTemp("", "ltigrade-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// built is one run of scripts/package.sh: package paths by "format/arch".
type built struct {
	version string
	pkgs    map[string]string
}

var (
	buildMu sync.Mutex
	builds  = map[string]*built{}
)

// buildPackages runs scripts/package.sh once per version (the Go build cache
// and the nfpm binary in .cache/tools make later runs cheap).
func buildPackages(t *testing.T, version, arches, formats string) *built {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("packages are built on Linux only")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	key := version + "|" + arches + "|" + formats
	if b, ok := builds[key]; ok {
		return b
	}
	dist := filepath.Join(workDir, "dist-"+strings.NewReplacer("|", "-", " ", "_").Replace(key))
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "package.sh"))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+version, "ARCHES="+arches, "FORMATS="+formats)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			t.Skipf("scripts/package.sh could not build nfpm (Go module proxy unreachable):\n%s", stderr.String())
		}
		t.Fatalf("scripts/package.sh: %v\n%s", err, stderr.String())
	}
	b := &built{version: version, pkgs: map[string]string{}}
	for _, line := range strings.Fields(stdout.String()) {
		ext := strings.TrimPrefix(filepath.Ext(line), ".")
		base := strings.TrimSuffix(filepath.Base(line), "."+ext)
		arch := base[strings.LastIndex(base, "_")+1:]
		b.pkgs[ext+"/"+arch] = line
	}
	for _, f := range strings.Fields(formats) {
		for _, a := range strings.Fields(arches) {
			if _, ok := b.pkgs[f+"/"+a]; !ok {
				t.Fatalf("scripts/package.sh printed no %s package for %s: %q", f, a, stdout.String())
			}
		}
	}
	builds[key] = b
	return b
}

// arches are the architectures built here: arm64 only with its cross compiler.
func arches(t *testing.T) string {
	if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err == nil {
		return "amd64 arm64"
	}
	t.Log("aarch64-linux-gnu-gcc not installed: amd64 packages only (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)")
	return "amd64"
}

var aptMu sync.Mutex

// needTool makes sure tool is on PATH, installing pkg with apt-get as root.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s is not installed and the test is not root, so it cannot apt-get install %s", tool, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skipf("%s is not installed and there is no apt-get to install %s", tool, pkg)
	}
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	out, err := install()
	if err != nil {
		// The package lists may be missing (a fresh container) or stale.
		if upd, uerr := exec.Command("apt-get", "update").CombinedOutput(); uerr != nil {
			t.Skipf("%s is not installed and apt-get update failed (no network?): %v\n%s", tool, uerr, upd)
		}
		out, err = install()
	}
	if err != nil {
		t.Skipf("%s is not installed and apt-get install %s failed: %v\n%s", tool, pkg, err, out)
	}
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("apt-get installed %s but %s is still not on PATH", pkg, tool)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// entry is one line of a package's file list.
type entry struct {
	mode  string // ls-style, e.g. -rw-r--r--
	owner string // user/group
}

// expectedFiles is what the package must hold (dirs aside), by path, with
// its mode, derived from the repository: every man page of docs/man, every
// unit in packaging/systemd, the completions, the example config, the docs.
// checkFiles compares a package's file list with want (path -> mode, all
// root/root): nothing missing, nothing unexpected, and with dirs every
// directory drwxr-xr-x root/root.
func checkFiles(t *testing.T, got map[string]entry, want map[string]string, dirs bool) {
	t.Helper()
	for p, mode := range want {
		e, ok := got[p]
		switch {
		case !ok:
			t.Errorf("missing %s", p)
		case e.mode != mode || e.owner != "root/root":
			t.Errorf("%s: %s %s, want %s root/root", p, e.mode, e.owner, mode)
		}
	}
	for p, e := range got {
		if _, ok := want[p]; ok {
			continue
		}
		if !strings.HasPrefix(e.mode, "d") {
			t.Errorf("unexpected file %s (%s)", p, e.mode)
		} else if dirs && (e.mode != "drwxr-xr-x" || e.owner != "root/root") {
			t.Errorf("directory %s: %s %s, want drwxr-xr-x root/root", p, e.mode, e.owner)
		}
	}
}

func expectedFiles(t *testing.T, withLintian bool) map[string]string {
	t.Helper()
	want := map[string]string{
		"/usr/bin/ltigrade": "-rwxr-xr-x",
		"/usr/share/bash-completion/completions/ltigrade":    "-rw-r--r--",
		"/usr/share/zsh/vendor-completions/_ltigrade":        "-rw-r--r--",
		"/usr/share/fish/vendor_completions.d/ltigrade.fish": "-rw-r--r--",
		"/etc/ltigrade/config.toml":                          "-rw-r--r--",
		"/usr/share/doc/ltigrade/copyright":                  "-rw-r--r--",
		"/usr/share/doc/ltigrade/changelog.gz":               "-rw-r--r--",
	}
	for _, d := range []string{"README.md", "configuration.md", "jupyterhub.md", "service.md", "grading-sandbox.md", "packaging.md"} {
		want["/usr/share/doc/ltigrade/"+d] = "-rw-r--r--"
	}
	if withLintian {
		want["/usr/share/lintian/overrides/ltigrade"] = "-rw-r--r--"
	}
	mans, _ := filepath.Glob(filepath.Join(repo, "docs", "man", "*.1"))
	if len(mans) < 10 {
		t.Fatalf("only %d man pages in docs/man", len(mans))
	}
	for _, m := range mans {
		want["/usr/share/man/man1/"+filepath.Base(m)+".gz"] = "-rw-r--r--"
	}
	units, _ := filepath.Glob(filepath.Join(repo, "packaging", "systemd", "*"))
	for _, u := range units {
		want["/usr/lib/systemd/system/"+filepath.Base(u)] = "-rw-r--r--"
	}
	for _, u := range []string{"ltigrade-sync.service", "ltigrade-sync.timer", "ltigrade-serve.service"} {
		if _, ok := want["/usr/lib/systemd/system/"+u]; !ok {
			t.Errorf("packaging/systemd lacks %s", u)
		}
	}
	return want
}

// debFiles parses `dpkg-deb -c`.
func debFiles(t *testing.T, deb string) map[string]entry {
	t.Helper()
	got := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: odd line %q", line)
		}
		p := "/" + strings.TrimPrefix(strings.TrimSuffix(f[5], "/"), "./")
		if p == "/" {
			continue
		}
		got[p] = entry{mode: f[0], owner: f[1]}
	}
	return got
}

func TestDebContents(t *testing.T) {
	needTool(t, "dpkg-deb", "dpkg")
	b := buildPackages(t, version1, arches(t), "deb rpm")
	for _, arch := range strings.Fields(arches(t)) {
		t.Run(arch, func(t *testing.T) {
			deb := b.pkgs["deb/"+arch]
			got := debFiles(t, deb)
			checkFiles(t, got, expectedFiles(t, true), true)
			if _, ok := got["/var/lib/ltigrade"]; ok {
				t.Errorf("/var/lib/ltigrade is in the package: dpkg would reset its mode on upgrade; postinst creates it")
			}

			fields := map[string]string{}
			for _, line := range strings.Split(run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"), "\n") {
				if k, v, ok := strings.Cut(line, ": "); ok {
					fields[k] = v
				}
			}
			wantFields := map[string]string{"Package": "ltigrade", "Version": strings.TrimPrefix(version1, "v"), "Architecture": arch, "Depends": "passwd"}
			for k, v := range wantFields {
				if fields[k] != v {
					t.Errorf("control %s = %q, want %q", k, fields[k], v)
				}
			}
			run(t, "dpkg-deb", "-I", deb) // a well-formed archive

			ctrl := filepath.Join(workDir, "control-"+arch)
			run(t, "dpkg-deb", "-e", deb, ctrl)
			conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
			if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/ltigrade/config.toml" {
				t.Errorf("conffiles = %q (%v), want exactly /etc/ltigrade/config.toml", conffiles, err)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				p := filepath.Join(ctrl, s)
				fi, err := os.Stat(p)
				if err != nil {
					t.Errorf("maintainer script %s: %v", s, err)
					continue
				}
				if fi.Mode().Perm() != 0o755 {
					t.Errorf("%s mode %v, want 0755", s, fi.Mode().Perm())
				}
				sameFile(t, p, filepath.Join(repo, "packaging", "scripts", s))
				if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
					t.Errorf("sh -n %s: %v\n%s", s, err, out)
				}
			}
			if _, err := os.Stat(filepath.Join(ctrl, "preinst")); err == nil {
				t.Errorf("unexpected preinst")
			}

			root := filepath.Join(workDir, "x-"+arch)
			run(t, "dpkg-deb", "-x", deb, root)
			checkTree(t, root, arch)
		})
	}
}

// checkTree compares an extracted package with the repository's files and
// checks its binary.
func checkTree(t *testing.T, root, arch string) {
	t.Helper()
	mans, _ := filepath.Glob(filepath.Join(repo, "docs", "man", "*.1"))
	for _, m := range mans {
		f, err := os.Open(filepath.Join(root, "usr/share/man/man1", filepath.Base(m)+".gz"))
		if err != nil {
			t.Error(err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Errorf("%s is not gzipped: %v", filepath.Base(m), err)
			f.Close()
			continue
		}
		page, err := io.ReadAll(zr)
		f.Close()
		want, _ := os.ReadFile(m)
		if err != nil || !bytes.Equal(page, want) {
			t.Errorf("man page %s differs from docs/man (%v)", filepath.Base(m), err)
		}
	}
	for dst, src := range map[string]string{
		"usr/share/bash-completion/completions/ltigrade":    "completions/ltigrade.bash",
		"usr/share/zsh/vendor-completions/_ltigrade":        "completions/ltigrade.zsh",
		"usr/share/fish/vendor_completions.d/ltigrade.fish": "completions/ltigrade.fish",
		"etc/ltigrade/config.toml":                          "packaging/config.toml",
		"usr/lib/systemd/system/ltigrade-sync.service":      "packaging/systemd/ltigrade-sync.service",
		"usr/lib/systemd/system/ltigrade-sync.timer":        "packaging/systemd/ltigrade-sync.timer",
		"usr/lib/systemd/system/ltigrade-serve.service":     "packaging/systemd/ltigrade-serve.service",
		"usr/share/doc/ltigrade/configuration.md":           "docs/configuration.md",
	} {
		sameFile(t, filepath.Join(root, dst), filepath.Join(repo, src))
	}

	bin := filepath.Join(root, "usr/bin/ltigrade")
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("usr/bin/ltigrade: %v", err)
	}
	defer ef.Close()
	wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if ef.Machine != wantMachine {
		t.Errorf("usr/bin/ltigrade is for %v, want %v", ef.Machine, wantMachine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("usr/bin/ltigrade is dynamically linked (has PT_INTERP); the package needs the static build")
		}
	}
	if arch != runtime.GOARCH {
		return
	}
	out := run(t, bin, "--version")
	if !strings.Contains(out, strings.TrimPrefix(version1, "v")) {
		t.Errorf("ltigrade --version = %q, want the version package.sh was given (%s)", out, version1)
	}
	// The example config parses, and points the database at /var/lib/ltigrade.
	cmd := exec.Command(bin, "--config", filepath.Join(root, "etc/ltigrade/config.toml"), "config", "show", "--json")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("ltigrade config show with the example config: %v", err)
	}
	var show struct {
		Database struct{ Value, Origin string } `json:"database"`
	}
	if err := json.Unmarshal(js, &show); err != nil {
		t.Fatalf("config show --json: %v\n%s", err, js)
	}
	if show.Database.Value != "/var/lib/ltigrade/ltigrade.db" || show.Database.Origin != "file" {
		t.Errorf("example config: database %q from %q, want /var/lib/ltigrade/ltigrade.db from the file", show.Database.Value, show.Database.Origin)
	}
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Error(err)
		return
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s differs from %s", got, want)
	}
}

func TestRPMContents(t *testing.T) {
	needTool(t, "rpm", "rpm")
	needTool(t, "dpkg-deb", "dpkg")
	b := buildPackages(t, version1, arches(t), "deb rpm")
	for _, arch := range strings.Fields(arches(t)) {
		t.Run(arch, func(t *testing.T) {
			rpm := b.pkgs["rpm/"+arch]
			hdr := run(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}\n", rpm)
			wantArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
			if want := fmt.Sprintf("ltigrade %s %s", strings.TrimPrefix(version1, "v"), wantArch); strings.TrimSpace(hdr) != want {
				t.Errorf("rpm header %q, want %q", strings.TrimSpace(hdr), want)
			}
			got := map[string]entry{}
			flags := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(run(t, "rpm", "-qp", "--qf",
				"[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEFLAGS:fflags}. %{FILENAMES}\n]", rpm)), "\n") {
				f := strings.Fields(line)
				if len(f) != 4 {
					t.Fatalf("rpm file list: odd line %q", line)
				}
				got[f[3]] = entry{mode: f[0], owner: f[1]}
				flags[f[3]] = strings.TrimSuffix(f[2], ".")
			}
			// The lintian overrides are the .deb's alone; rpm lists its
			// directories with the owner rpm gives them, not checked here.
			checkFiles(t, got, expectedFiles(t, false), false)
			if f := flags["/etc/ltigrade/config.toml"]; !strings.Contains(f, "c") || !strings.Contains(f, "n") {
				t.Errorf("/etc/ltigrade/config.toml flags %q, want config(noreplace) (c and n)", f)
			}
			for p, f := range flags {
				if p != "/etc/ltigrade/config.toml" && strings.Contains(f, "c") {
					t.Errorf("%s is marked as config", p)
				}
			}
			scripts := run(t, "rpm", "-qp", "--scripts", rpm)
			for section, file := range map[string]string{"postinstall": "postinst", "preuninstall": "prerm", "postuninstall": "postrm"} {
				body, _ := os.ReadFile(filepath.Join(repo, "packaging", "scripts", file))
				i := strings.Index(scripts, section+" scriptlet")
				if i < 0 || !strings.Contains(scripts[i:], strings.TrimSpace(string(body))) {
					t.Errorf("rpm %s scriptlet is not packaging/scripts/%s", section, file)
				}
			}
			if req := run(t, "rpm", "-qpR", rpm); !strings.Contains(req, "shadow-utils") {
				t.Errorf("rpm requires %q, want shadow-utils (groupadd)", req)
			}
		})
	}
}

func TestLintian(t *testing.T) {
	needTool(t, "dpkg-deb", "dpkg")
	needTool(t, "lintian", "lintian")
	b := buildPackages(t, version1, arches(t), "deb rpm")
	deb := b.pkgs["deb/amd64"]
	// Errors and warnings fail; the overrides in packaging/lintian-overrides
	// say why each one is there.
	out, err := exec.Command("lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb).CombinedOutput()
	if err != nil {
		t.Errorf("lintian %s: %v\n%s", filepath.Base(deb), err, out)
	}
	t.Logf("lintian:\n%s", out)
}

// TestGoreleaserMatchesNfpm keeps goreleaser.yaml true to what
// scripts/package.sh builds: the same contents, scripts and dependencies as
// packaging/nfpm.yaml, and the same static build flags.
func TestGoreleaserMatchesNfpm(t *testing.T) {
	type content struct {
		Src      string         `yaml:"src"`
		Dst      string         `yaml:"dst"`
		Type     string         `yaml:"type"`
		Packager string         `yaml:"packager"`
		FileInfo map[string]any `yaml:"file_info"`
	}
	var nf struct {
		Contents  []content         `yaml:"contents"`
		Scripts   map[string]string `yaml:"scripts"`
		Overrides map[string]struct {
			Depends []string `yaml:"depends"`
		} `yaml:"overrides"`
		Section, Priority, Maintainer, Description, Homepage, Vendor string
	}
	var gr struct {
		Builds []struct {
			ID      string   `yaml:"id"`
			Tags    []string `yaml:"tags"`
			Ldflags []string `yaml:"ldflags"`
			Flags   []string `yaml:"flags"`
			Goarch  []string `yaml:"goarch"`
		} `yaml:"builds"`
		Before struct {
			Hooks []string `yaml:"hooks"`
		} `yaml:"before"`
		Nfpms []struct {
			IDs       []string          `yaml:"ids"`
			Formats   []string          `yaml:"formats"`
			Bindir    string            `yaml:"bindir"`
			Contents  []content         `yaml:"contents"`
			Scripts   map[string]string `yaml:"scripts"`
			Overrides map[string]struct {
				Dependencies []string `yaml:"dependencies"`
			} `yaml:"overrides"`
			Section, Priority, Maintainer, Description, Homepage, Vendor string
		} `yaml:"nfpms"`
	}
	readYAML(t, "packaging/nfpm.yaml", &nf)
	readYAML(t, "goreleaser.yaml", &gr)
	if len(gr.Nfpms) != 1 || len(gr.Builds) != 1 {
		t.Fatalf("goreleaser.yaml: %d nfpms, %d builds; want one of each", len(gr.Nfpms), len(gr.Builds))
	}
	g := gr.Nfpms[0]
	if g.Bindir != "/usr/bin" || len(g.IDs) != 1 || g.IDs[0] != gr.Builds[0].ID {
		t.Errorf("goreleaser nfpms: bindir %q ids %v, want /usr/bin and build %q", g.Bindir, g.IDs, gr.Builds[0].ID)
	}
	if strings.Join(g.Formats, " ") != "deb rpm" {
		t.Errorf("goreleaser nfpms formats %v, want deb rpm", g.Formats)
	}
	const stage = ".cache/pkgstage"
	hookOK := false
	for _, h := range gr.Before.Hooks {
		hookOK = hookOK || (strings.Contains(h, "STAGE="+stage) && strings.Contains(h, "scripts/package.sh --stage-only"))
	}
	if !hookOK {
		t.Errorf("goreleaser.yaml has no before hook staging %s with scripts/package.sh --stage-only", stage)
	}
	var want []content
	for _, c := range nf.Contents {
		if c.Src == "${BINARY}" {
			if c.Dst != "/usr/bin/ltigrade" {
				t.Errorf("the binary goes to %s, goreleaser's bindir puts it in /usr/bin", c.Dst)
			}
			continue // goreleaser places the build itself (bindir)
		}
		c.Src = strings.ReplaceAll(c.Src, "${STAGE}", stage)
		want = append(want, c)
	}
	norm := func(cs []content) []string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s -> %s type=%s packager=%s info=%v", c.Src, c.Dst, c.Type, c.Packager, c.FileInfo))
		}
		sort.Strings(out)
		return out
	}
	if w, got := strings.Join(norm(want), "\n"), strings.Join(norm(g.Contents), "\n"); w != got {
		t.Errorf("goreleaser nfpms contents differ from packaging/nfpm.yaml:\n--- nfpm.yaml\n%s\n--- goreleaser.yaml\n%s", w, got)
	}
	if fmt.Sprint(nf.Scripts) != fmt.Sprint(g.Scripts) {
		t.Errorf("scripts: nfpm.yaml %v, goreleaser.yaml %v", nf.Scripts, g.Scripts)
	}
	for _, p := range []string{"deb", "rpm"} {
		if fmt.Sprint(nf.Overrides[p].Depends) != fmt.Sprint(g.Overrides[p].Dependencies) {
			t.Errorf("%s dependencies: nfpm.yaml %v, goreleaser.yaml %v", p, nf.Overrides[p].Depends, g.Overrides[p].Dependencies)
		}
	}
	for name, pair := range map[string][2]string{
		"section": {nf.Section, g.Section}, "priority": {nf.Priority, g.Priority}, "maintainer": {nf.Maintainer, g.Maintainer},
		"description": {nf.Description, g.Description}, "homepage": {nf.Homepage, g.Homepage}, "vendor": {nf.Vendor, g.Vendor},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: nfpm.yaml %q, goreleaser.yaml %q", name, pair[0], pair[1])
		}
	}
	// The build flags: the tags and the static link of scripts/package.sh.
	script, err := os.ReadFile(filepath.Join(repo, "scripts", "package.sh"))
	if err != nil {
		t.Fatal(err)
	}
	b := gr.Builds[0]
	if tags := "-tags " + strings.Join(b.Tags, ","); !bytes.Contains(script, []byte(tags)) {
		t.Errorf("goreleaser tags %v are not scripts/package.sh's (%q not found)", b.Tags, tags)
	}
	ld := strings.Join(b.Ldflags, " ")
	for _, f := range []string{"-s -w", "-linkmode external -extldflags -static", "-X github.com/ltigrade/ltigrade/internal/cli.Version="} {
		if !strings.Contains(ld, f) || !bytes.Contains(script, []byte(f)) {
			t.Errorf("ldflags %q: goreleaser.yaml and scripts/package.sh must both have it", f)
		}
	}
	if fmt.Sprint(b.Flags) != "[-trimpath]" || !bytes.Contains(script, []byte("-trimpath")) {
		t.Errorf("goreleaser flags %v; both builds use -trimpath", b.Flags)
	}
}

func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// throwawayRoot is a root for dpkg --root: the host's /usr as the lower
// layer of an overlay (so the maintainer scripts find sh, groupadd and
// systemctl, and nothing of the host is written), a copy of the host's dpkg
// database (the package's dependencies are the host's), its user and group
// files, and its own /var and /etc. The overlay lives in the mount namespace
// of a `sleep` started by unshare; every command enters it with nsenter, and
// killing the sleep takes the mounts away.
type throwawayRoot struct {
	t    *testing.T
	dir  string
	pid  int
	proc *exec.Cmd
}

// chrootEnv is the whole environment of commands in the root: nothing of the
// test's (LTIGRADE_*, TMPDIR, the Go toolchain's PATH) leaks in.
var chrootEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8"}

func newThrowawayRoot(t *testing.T) *throwawayRoot {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("installing the .deb into a throwaway root needs root (mount namespace, overlay, chroot); CI runs as root")
	}
	for _, tool := range []string{"unshare", "nsenter", "chroot", "mount", "dpkg"} {
		needTool(t, tool, map[string]string{"unshare": "util-linux", "nsenter": "util-linux", "mount": "mount", "chroot": "coreutils", "dpkg": "dpkg"}[tool])
	}
	dir, err := os.MkdirTemp(workDir, "root-")
	if err != nil {
		t.Fatal(err)
	}
	r := &throwawayRoot{t: t, dir: dir}
	for _, d := range []string{".ov/upper", ".ov/work", "usr", "etc", "var/lib", "var/cache", "tmp", "dev", "proc", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink("/" + l); err == nil {
			os.Symlink(target, filepath.Join(dir, l))
		} else if _, err := os.Stat("/" + l); err == nil {
			t.Skipf("/%s is not a link into /usr (no merged /usr): the overlay root would lack it", l)
		}
	}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow", "login.defs", "nsswitch.conf", "manpath.config"} {
		if data, err := os.ReadFile("/etc/" + f); err == nil {
			fi, _ := os.Stat("/etc/" + f)
			if err := os.WriteFile(filepath.Join(dir, "etc", f), data, fi.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(t, "cp", "-a", "/var/lib/dpkg", filepath.Join(dir, "var/lib/"))
	for _, lock := range []string{"lock", "lock-frontend", "triggers/Lock"} {
		os.Remove(filepath.Join(dir, "var/lib/dpkg", lock))
	}

	r.proc = exec.Command("unshare", "--mount", "--propagation", "private", "--", "sleep", "3600")
	if err := r.proc.Start(); err != nil {
		t.Fatal(err)
	}
	r.pid = r.proc.Process.Pid
	t.Cleanup(func() {
		r.proc.Process.Kill()
		r.proc.Wait()
	})
	// unshare has made the namespace once it execs sleep.
	for i := 0; ; i++ {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.pid))
		if strings.HasSuffix(exe, "/sleep") {
			break
		}
		if i > 1000 {
			t.Fatalf("unshare did not start sleep (exe %q)", exe)
		}
		syscall.Nanosleep(&syscall.Timespec{Nsec: 10e6}, nil)
	}
	ov := "lowerdir=/usr,upperdir=" + filepath.Join(dir, ".ov/upper") + ",workdir=" + filepath.Join(dir, ".ov/work")
	if out, err := r.ns("mount", "-t", "overlay", "overlay", "-o", ov, filepath.Join(dir, "usr")); err != nil {
		t.Skipf("cannot mount an overlay of /usr here (%v: %s): no throwaway root", err, out)
	}
	if out, err := r.ns("mount", "--rbind", "/dev", filepath.Join(dir, "dev")); err != nil {
		t.Fatalf("bind /dev: %v\n%s", err, out)
	}
	if out, err := r.ns("mount", "-t", "proc", "proc", filepath.Join(dir, "proc")); err != nil {
		t.Fatalf("mount proc: %v\n%s", err, out)
	}
	return r
}

// ns runs a command in the root's mount namespace (on the host's files, with
// the root's overlay mounted).
func (r *throwawayRoot) ns(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(r.pid), "-m", "--", name}, args...)...)
	cmd.Env = chrootEnv
	return cmd.CombinedOutput()
}

// dpkg runs dpkg --root on the throwaway root.
func (r *throwawayRoot) dpkg(args ...string) string {
	r.t.Helper()
	out, err := r.ns("dpkg", append([]string{"--root=" + r.dir}, args...)...)
	if err != nil {
		r.t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// chroot runs a command inside the root.
func (r *throwawayRoot) chroot(args ...string) (string, error) {
	out, err := r.ns("chroot", append([]string{r.dir}, args...)...)
	return string(out), err
}

func (r *throwawayRoot) exists(p string) bool {
	// Inside the root, so the absolute links systemctl makes resolve there.
	_, err := r.chroot("test", "-e", "/"+p)
	return err == nil
}

func TestDebInstallUpgradeRemovePurge(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the install test runs the amd64 package")
	}
	needTool(t, "dpkg-deb", "dpkg")
	r := newThrowawayRoot(t)
	v1 := buildPackages(t, version1, arches(t), "deb rpm").pkgs["deb/amd64"]
	v2 := buildPackages(t, version2, "amd64", "deb").pkgs["deb/amd64"]

	r.dpkg("-i", v1)
	out, err := r.chroot("/usr/bin/ltigrade", "--version")
	if err != nil || !strings.Contains(out, strings.TrimPrefix(version1, "v")) {
		t.Fatalf("installed ltigrade --version: %q, %v", out, err)
	}
	if out, err := r.chroot("/usr/bin/ltigrade", "demo"); err != nil {
		t.Fatalf("installed ltigrade demo: %v\n%s", err, out)
	}
	// postinst: the group and the database folder, nothing enabled or started.
	if out, err := r.chroot("getent", "group", "ltigrade"); err != nil {
		t.Errorf("postinst made no ltigrade group: %v %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(r.dir, "var/lib/ltigrade"))
	if err != nil {
		t.Fatalf("postinst made no /var/lib/ltigrade: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode()&os.ModeType != os.ModeDir || fi.Mode().Perm() != 0o700 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("/var/lib/ltigrade: %v uid %d gid %d, want a 0700 root:root folder", fi.Mode(), st.Uid, st.Gid)
	}
	for _, link := range []string{"etc/systemd/system/timers.target.wants/ltigrade-sync.timer", "etc/systemd/system/multi-user.target.wants/ltigrade-serve.service"} {
		if r.exists(link) {
			t.Errorf("installing enabled a unit: %s", link)
		}
	}
	// The units are valid for systemd, with their binary and man pages in place.
	if _, err := os.Stat("/usr/bin/systemd-analyze"); err == nil {
		if out, err := r.chroot("systemd-analyze", "verify", "/usr/lib/systemd/system/ltigrade-sync.service",
			"/usr/lib/systemd/system/ltigrade-sync.timer", "/usr/lib/systemd/system/ltigrade-serve.service"); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("no systemd-analyze on this host: units not verified")
	}
	// The default config is the package's: sync makes the database there.
	if out, err := r.chroot("/usr/bin/ltigrade", "sync"); err != nil {
		t.Fatalf("installed ltigrade sync: %v\n%s", err, out)
	}
	db := filepath.Join(r.dir, "var/lib/ltigrade/ltigrade.db")
	dbBefore, err := os.ReadFile(db)
	if err != nil {
		t.Fatalf("sync with the installed config made no /var/lib/ltigrade/ltigrade.db: %v", err)
	}

	// An admin edits the config and shares the folder with the grader group.
	cfg := filepath.Join(r.dir, "etc/ltigrade/config.toml")
	edited := "\n# edited by the admin\n"
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(edited)
	f.Close()
	if out, err := r.chroot("sh", "-c", "chgrp ltigrade /var/lib/ltigrade && chmod 2770 /var/lib/ltigrade"); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	// Upgrade: the new binary, the admin's config, the database, the folder's mode.
	r.dpkg("-i", v2)
	if out, err := r.chroot("/usr/bin/ltigrade", "--version"); err != nil || !strings.Contains(out, strings.TrimPrefix(version2, "v")) {
		t.Errorf("after upgrade, ltigrade --version: %q, %v", out, err)
	}
	if got, _ := os.ReadFile(cfg); !strings.HasSuffix(string(got), edited) {
		t.Errorf("the upgrade replaced the edited config:\n%s", got)
	}
	if leftovers, _ := filepath.Glob(cfg + ".dpkg-*"); len(leftovers) > 0 {
		t.Errorf("the upgrade left %v", leftovers)
	}
	if out, err := r.chroot("/usr/bin/ltigrade", "config", "show"); err != nil {
		t.Errorf("config show after the upgrade: %v\n%s", err, out)
	}
	if dbAfter, err := os.ReadFile(db); err != nil || !bytes.Equal(dbAfter, dbBefore) {
		t.Errorf("the upgrade changed or removed the database (%v)", err)
	}
	if fi, err := os.Stat(filepath.Join(r.dir, "var/lib/ltigrade")); err != nil || fi.Mode().Perm() != 0o770 || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("the upgrade reset the shared folder's mode: %v %v", fi.Mode(), err)
	}

	// Remove: the timer an admin enabled is disabled; data and config stay.
	if out, err := r.chroot("systemctl", "enable", "ltigrade-sync.timer"); err != nil {
		t.Fatalf("systemctl enable in the root: %v\n%s", err, out)
	}
	if !r.exists("etc/systemd/system/timers.target.wants/ltigrade-sync.timer") {
		t.Fatalf("systemctl enable made no link")
	}
	r.dpkg("-r", "ltigrade")
	if r.exists("usr/bin/ltigrade") || r.exists("usr/lib/systemd/system/ltigrade-sync.timer") {
		t.Errorf("remove left the binary or the units")
	}
	if r.exists("etc/systemd/system/timers.target.wants/ltigrade-sync.timer") {
		t.Errorf("remove left ltigrade-sync.timer enabled")
	}
	for _, keep := range []string{"etc/ltigrade/config.toml", "var/lib/ltigrade/ltigrade.db"} {
		if !r.exists(keep) {
			t.Errorf("remove (no purge) deleted %s", keep)
		}
	}

	// Purge: the config (with any secrets beside it) and the data go.
	r.dpkg("-P", "ltigrade")
	for _, gone := range []string{"etc/ltigrade", "var/lib/ltigrade"} {
		if r.exists(gone) {
			t.Errorf("purge left %s", gone)
		}
	}
	if out, err := r.ns("dpkg-query", "--root="+r.dir, "-W", "-f", "${Status}", "ltigrade"); err == nil && strings.Contains(string(out), "installed") && !strings.Contains(string(out), "not-installed") {
		t.Errorf("dpkg still lists ltigrade after purge: %s", out)
	}
}

// TestServeUnitCapabilitiesRunTheSandbox runs the grading sandbox's own tests
// under ltigrade-serve.service's CapabilityBoundingSet and NoNewPrivileges
// (setpriv applies both, as systemd would), so the unit's hardening cannot
// take away what server-side grading needs. It also checks the harness: the
// same tests without CAP_SYS_ADMIN must fail.
func TestServeUnitCapabilitiesRunTheSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the grading sandbox needs root; CI runs as root")
	}
	needTool(t, "setpriv", "util-linux")
	unit, err := os.ReadFile(filepath.Join(repo, "packaging", "systemd", "ltigrade-serve.service"))
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	nnp := false
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			for _, c := range strings.Fields(v) {
				caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
		}
		nnp = nnp || strings.TrimSpace(line) == "NoNewPrivileges=yes"
	}
	if len(caps) == 0 {
		t.Fatal("ltigrade-serve.service sets no CapabilityBoundingSet")
	}
	bin := filepath.Join(workDir, "sandbox.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "./internal/sandbox/")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./internal/sandbox: %v\n%s", err, out)
	}
	runUnder := func(caps []string) ([]byte, error) {
		args := []string{"--bounding-set", "-all,+" + strings.Join(caps, ",+"), "--inh-caps", "-all"}
		if nnp {
			args = append(args, "--no-new-privs")
		}
		args = append(args, "--", bin, "-test.count=1",
			"-test.run", "^(TestRunReturnsOutputExitCodeAndFiles|TestProgramIsUnprivileged|TestNoNetwork|TestTimeoutLeavesNothingBehind|TestOnlyTheSystemAndGivenPathsAreVisible|TestSeccompFilter)$")
		cmd := exec.Command("setpriv", args...)
		cmd.Dir = filepath.Join(repo, "internal", "sandbox")
		cmd.Env = append(os.Environ(), "LTIGRADE_SANDBOX_TESTS=require")
		return cmd.CombinedOutput()
	}
	if out, err := runUnder(caps); err != nil {
		t.Errorf("the sandbox tests fail under the unit's capabilities %v (no-new-privs %v): %v\n%s", caps, nnp, err, out)
	}
	var less []string
	for _, c := range caps {
		if c != "sys_admin" {
			less = append(less, c)
		}
	}
	if out, err := runUnder(less); err == nil {
		t.Errorf("the sandbox tests pass without CAP_SYS_ADMIN: setpriv is not restricting them\n%s", out)
	}
}
