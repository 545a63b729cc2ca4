package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests build real sandboxes: they need root and namespaces, and make
// a throwaway system user (removed at the end). Elsewhere they skip, unless
// LTIGRADE_SANDBOX_TESTS=require (for CI, which runs as root) makes a skip
// a failure.

var testUser string // created by TestMain when the sandbox can run

func TestMain(m *testing.M) {
	ChildMain() // the sandbox's stages run as this test binary
	name, cleanup := makeTestUser()
	testUser = name
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func makeTestUser() (string, func()) {
	if os.Geteuid() != 0 {
		return "", func() {}
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		return "", func() {}
	}
	name := "ltgsbx" + randHex(4)
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "useradd %s: %v: %s\n", name, err, out)
		return "", func() {}
	}
	return name, func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "userdel %s: %v: %s\n", name, err, out)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// needSandbox skips (or, under LTIGRADE_SANDBOX_TESTS=require, fails) when
// this machine cannot build sandboxes, and returns the test user.
func needSandbox(t *testing.T) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("LTIGRADE_SANDBOX_TESTS") == "require" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("sandbox tests need root (namespaces, mounts, switching users); CI runs them as root")
	}
	if err := Available(); err != nil {
		skip("sandbox unavailable here: %v", err)
	}
	if testUser == "" {
		skip("could not create a throwaway user with useradd (see stderr)")
	}
	return testUser
}

func needPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o001 != 0 {
			return p
		}
	}
	t.Skip("no world-executable python3 in /usr/bin, /usr/local/bin or /bin")
	return ""
}

func mustRun(t *testing.T, s Spec) *Result {
	t.Helper()
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("%s; stdout %q; stderr %q", res.Summary(), clip(res.Stdout), clip(res.Stderr))
	return res
}

func clip(b []byte) string {
	if len(b) > 400 {
		return string(b[:200]) + "..." + string(b[len(b)-200:])
	}
	return string(b)
}

// hostDir makes a directory outside /tmp (which is private in the sandbox),
// like the service's /var/lib/ltigrade, removed after the test. The sandbox
// sees it only when it is listed in Spec.ReadOnly.
func hostDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/lib", "ltigrade-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// processesOf lists the host's processes whose real uid is uid.
func processesOf(t *testing.T, uid string) []string {
	t.Helper()
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		status, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == uid {
				cmd, _ := os.ReadFile(filepath.Join(d, "cmdline"))
				found = append(found, filepath.Base(d)+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return found
}

func uidOf(t *testing.T, name string) string {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.Uid
}

func TestRunReturnsOutputExitCodeAndFiles(t *testing.T) {
	u := needSandbox(t)
	res := mustRun(t, Spec{
		User:  u,
		Files: []File{{Name: "in/data.txt", Data: []byte("hello data")}, {Name: "run.sh", Data: []byte("echo script ran\n"), Mode: 0o755}},
		Argv: []string{"sh", "-c", `echo out; echo err >&2; cat in/data.txt > result.txt; pwd > where.txt
			id -u > uid.txt; echo "$1" > arg.txt; echo "$HOME" > home.txt; ./run.sh; exit 3`, "sh", "{dir}"},
		Collect: []string{"result.txt", "where.txt", "uid.txt", "arg.txt", "home.txt", "missing.txt"},
	})
	if res.ExitCode != 3 || res.Signal != "" || res.TimedOut {
		t.Errorf("exit %d signal %q timed out %v, want exit 3", res.ExitCode, res.Signal, res.TimedOut)
	}
	if got := string(res.Stdout); got != "out\nscript ran\n" {
		t.Errorf("stdout %q", got)
	}
	if got := string(res.Stderr); got != "err\n" || res.StderrBytes != 4 {
		t.Errorf("stderr %q (%d bytes)", got, res.StderrBytes)
	}
	want := map[string]string{
		"result.txt": "hello data",
		"where.txt":  WorkDir + "\n",
		"uid.txt":    uidOf(t, u) + "\n",
		"arg.txt":    WorkDir + "\n",
		"home.txt":   WorkDir + "\n",
	}
	for name, w := range want {
		if got, ok := res.Files[name]; !ok || string(got) != w {
			t.Errorf("collected %s = %q (present %v), want %q", name, got, ok, w)
		}
	}
	if _, ok := res.Files["missing.txt"]; ok {
		t.Errorf("a file the program never wrote was collected")
	}
}

// The program holds no privilege: no capabilities, no groups, no_new_privs
// (a setuid binary gives it nothing).
func TestProgramIsUnprivileged(t *testing.T) {
	u := needSandbox(t)
	res := mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", "grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs):' /proc/self/status"}})
	uid := uidOf(t, u)
	for _, want := range []string{"Uid:\t" + uid + "\t" + uid + "\t" + uid, "Groups:\t \n", "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(res.Stdout)+"\n", want) {
			t.Errorf("/proc/self/status lacks %q", want)
		}
	}
}

func TestSecretFilesAreUnreadable(t *testing.T) {
	u := needSandbox(t)
	secret := "SECRET-" + randHex(8)
	public := "PUBLIC-" + randHex(8)
	// A 0600 root file where the sandbox can see it (a path it was given
	// read-only), like a database or key left in the grader's software,
	// next to a world-readable one that proves it can see there at all.
	visible := hostDir(t, 0o755)
	if err := os.WriteFile(filepath.Join(visible, "ltigrade.db"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(visible, "public.txt"), []byte(public), 0o644); err != nil {
		t.Fatal(err)
	}
	// And one under the host's /tmp, which the sandbox does not even see.
	hidden := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(hidden, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, Spec{User: u, ReadOnly: []string{visible}, Argv: []string{"sh", "-c", `cat "$1/public.txt"; echo; cat "$1/ltigrade.db"; cat "$2"; ls "$(dirname "$2")"`,
		"sh", visible, hidden}})
	out := string(res.Stdout) + string(res.Stderr)
	if !strings.Contains(string(res.Stdout), public) {
		t.Fatalf("the world-readable file beside the secret was not readable, so the test proves nothing")
	}
	if strings.Contains(out, secret) {
		t.Errorf("the program read a root-only file")
	}
	if !strings.Contains(string(res.Stderr), "ltigrade.db: Permission denied") {
		t.Errorf("reading the root-only file did not fail with permission denied")
	}
	if !strings.Contains(string(res.Stderr), "No such file") {
		t.Errorf("the host's /tmp was visible in the sandbox")
	}
}

func TestEnvironmentHasNothingOfTheService(t *testing.T) {
	u := needSandbox(t)
	leak := "leak-" + randHex(8)
	t.Setenv("LTIGRADE_CONFIG", "/etc/"+leak)
	t.Setenv("LTIGRADE_TEST_SECRET", leak)
	t.Setenv("JUPYTERHUB_API_TOKEN", leak)
	res := mustRun(t, Spec{User: u, Env: []string{"PATH=/usr/bin:/bin", "ONLY=this"},
		Argv: []string{"sh", "-c", `env; echo ---; for f in /proc/1/environ /proc/$PPID/environ /proc/[0-9]*/environ; do cat "$f"; echo; done; echo ---; ls /proc`}})
	out := string(res.Stdout) + string(res.Stderr)
	if strings.Contains(out, leak) {
		t.Errorf("the service's environment leaked into the sandbox")
	}
	env := strings.Split(strings.SplitN(string(res.Stdout), "---", 2)[0], "\n")
	env = slices.DeleteFunc(env, func(s string) bool { return s == "" || strings.HasPrefix(s, "PWD=") })
	slices.Sort(env)
	if want := []string{"ONLY=this", "PATH=/usr/bin:/bin"}; !slices.Equal(env, want) {
		t.Errorf("environment %q, want exactly %q (and the shell's PWD)", env, want)
	}
	// The pid namespace shows the program its own few processes only.
	parts := strings.Split(string(res.Stdout), "---")
	for _, f := range strings.Fields(parts[len(parts)-1]) {
		if n, err := strconv.Atoi(f); err == nil && n > 50 {
			t.Errorf("/proc in the sandbox shows pid %d: the host's processes are visible", n)
		}
	}
}

func TestNoNetwork(t *testing.T) {
	u := needSandbox(t)
	py := needPython(t)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	targets := []string{"127.0.0.1"}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() {
				targets = append(targets, ip.IP.String()) // the host's own address, also listened on
				break
			}
		}
	}
	script := `import socket, sys
for host in sys.argv[2:]:
    try:
        socket.create_connection((host, int(sys.argv[1])), timeout=3)
        print("connected", host)
    except OSError as e:
        print("connect failed:", host, e)
`
	res := mustRun(t, Spec{User: u, Argv: append([]string{py, "-c", script, strconv.Itoa(port)}, targets...)})
	if strings.Contains(string(res.Stdout), "connected") || accepted.Load() != 0 {
		t.Errorf("the sandbox reached the host's listener")
	}
	if n := strings.Count(string(res.Stdout), "connect failed:"); n != len(targets) {
		t.Errorf("%d of %d connections reported failing; the program did not run as planned", n, len(targets))
	}
}

func TestForkBombIsContained(t *testing.T) {
	u := needSandbox(t)
	py := needPython(t)
	// Forks until the process limit stops it; the children wait to be killed.
	script := `import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    print("forks", n, "errno", e.errno)
`
	res := mustRun(t, Spec{User: u, Argv: []string{py, "-c", script}, Limits: Limits{Processes: 16, Wall: 20 * time.Second}})
	var n, errno int
	if _, err := fmt.Sscanf(string(res.Stdout), "forks %d errno %d", &n, &errno); err != nil {
		t.Fatalf("the bomb did not report: %v", err)
	}
	if errno != 11 || n >= 16 {
		t.Errorf("forks stopped after %d with errno %d, want fewer than 16 and EAGAIN", n, errno)
	}
	if left := processesOf(t, uidOf(t, u)); len(left) > 0 {
		t.Errorf("processes of the sandbox user survived: %q", left)
	}

	// The classic recursive bomb: bounded by the limit, ended by Wall.
	res = mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", "b() { b | b & }; b; sleep 60"},
		Limits: Limits{Processes: 16, Wall: 2 * time.Second}})
	if !res.TimedOut && res.ExitCode == 0 {
		t.Errorf("the bomb ended on its own (%s)?", res.Summary())
	}
	if left := processesOf(t, uidOf(t, u)); len(left) > 0 {
		t.Errorf("processes of the sandbox user survived: %q", left)
	}
}

func TestEndlessLoopIsStopped(t *testing.T) {
	u := needSandbox(t)
	// CPU time: the loop burns it, RLIMIT_CPU ends it.
	res := mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", "while :; do :; done"}, Limits: Limits{CPU: time.Second, Wall: time.Minute}})
	if res.Signal != "SIGXCPU" {
		t.Errorf("CPU-bound loop ended with %s, want SIGXCPU", res.Summary())
	}
	if res.TimedOut {
		t.Errorf("the CPU limit should have stopped it before the wall clock")
	}
	// Wall time: a sleeper uses no CPU, Wall ends it.
	res = mustRun(t, Spec{User: u, Argv: []string{"sleep", "600"}, Limits: Limits{Wall: time.Second}})
	if !res.TimedOut || res.Signal != "SIGKILL" {
		t.Errorf("sleeper ended with %s (timed out %v), want killed on the wall clock", res.Summary(), res.TimedOut)
	}
}

func TestFillingTheDiskStopsAtTheLimits(t *testing.T) {
	u := needSandbox(t)
	py := needPython(t)
	tag := randHex(6)
	script := `import sys
total = 0
try:
    with open(sys.argv[1], "wb") as f:
        while True:
            f.write(b"x" * 65536)
            f.flush()
            total += 65536
except OSError as e:
    print("wrote", total, "errno", e.errno)
`
	for _, tc := range []struct {
		name   string
		limits Limits
		path   string
		errno  int
		max    int64
	}{
		{"disk", Limits{Disk: 8 << 20, FileSize: 64 << 20}, "{dir}/fill", 28 /* ENOSPC */, 8 << 20},
		{"disk through /tmp", Limits{Disk: 8 << 20, FileSize: 64 << 20}, "/tmp/fill-" + tag, 28, 8 << 20},
		{"file size", Limits{Disk: 64 << 20, FileSize: 1 << 20}, "{dir}/fill", 27 /* EFBIG */, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustRun(t, Spec{User: u, Argv: []string{py, "-c", script, tc.path}, Limits: tc.limits})
			var total int64
			var errno int
			if _, err := fmt.Sscanf(string(res.Stdout), "wrote %d errno %d", &total, &errno); err != nil {
				t.Fatalf("the writer did not report: %v", err)
			}
			if errno != tc.errno || total > tc.max {
				t.Errorf("wrote %d bytes, stopped by errno %d; want at most %d and errno %d", total, errno, tc.max, tc.errno)
			}
		})
	}
	if _, err := os.Stat("/tmp/fill-" + tag); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the sandbox's /tmp file appeared on the host: %v", err)
	}
	// Python ignores SIGXFSZ; a plain program is killed by it.
	res := mustRun(t, Spec{User: u, Argv: []string{"dd", "if=/dev/zero", "of=big", "bs=1M", "count=4"}, Limits: Limits{FileSize: 1 << 20}})
	if res.Signal != "SIGXFSZ" {
		t.Errorf("dd past the file size limit ended with %s, want SIGXFSZ", res.Summary())
	}
}

func TestWritingOutsideItsDirectoryFails(t *testing.T) {
	for _, each := range []bool{false, true} {
		t.Run(fmt.Sprintf("remount each %v", each), func(t *testing.T) {
			u := needSandbox(t)
			forceRemountEach = each
			defer func() { forceRemountEach = false }()
			open := hostDir(t, 0o777) // world-writable on the host
			tag := randHex(6)
			targets := []string{open + "/escape", "/tmp/escape-" + tag, "/var/tmp/escape-" + tag, "/dev/shm/escape-" + tag}
			res := mustRun(t, Spec{User: u, ReadOnly: []string{open}, Argv: append([]string{"sh", "-c", `for p; do echo x > "$p" && echo "wrote $p"; done`, "sh"}, targets...)})
			if !strings.Contains(string(res.Stderr), "Read-only file system") {
				t.Errorf("writing to the host's world-writable directory did not fail read-only")
			}
			if strings.Contains(string(res.Stdout), "wrote "+open) {
				t.Errorf("the sandbox wrote into a host directory")
			}
			for _, p := range targets {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists on the host after the run", p)
				}
			}
		})
	}
}

func TestHugeOutputKeepsTheTailAndCounts(t *testing.T) {
	u := needSandbox(t)
	res := mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", "head -c 52428800 /dev/zero | tr '\\0' x; echo END; echo oops >&2"},
		Limits: Limits{Output: 64 << 10}})
	if res.StdoutBytes != 50<<20+4 {
		t.Errorf("counted %d bytes of stdout, want %d", res.StdoutBytes, 50<<20+4)
	}
	if len(res.Stdout) != 64<<10 || !bytes.HasSuffix(res.Stdout, []byte("xxxEND\n")) {
		t.Errorf("kept %d bytes ending %q, want the last %d", len(res.Stdout), res.Stdout[max(0, len(res.Stdout)-10):], 64<<10)
	}
	if string(res.Stderr) != "oops\n" {
		t.Errorf("stderr %q", res.Stderr)
	}
}

func TestNothingSurvivesTheProgram(t *testing.T) {
	u := needSandbox(t)
	// A plain background job, one detached into its own session that
	// ignores hangups and terms, and a double fork: each keeps stdout open
	// and would rewrite the result later.
	script := `(sleep 2; echo tampered > result.txt) &
setsid sh -c 'trap "" HUP TERM; sleep 2; echo tampered > result.txt' &
sh -c '(sleep 2; echo tampered > result.txt) &' &
echo graded > result.txt
echo main done`
	res := mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", script}, Collect: []string{"result.txt"}, Limits: Limits{Wall: time.Minute}})
	if res.TimedOut || res.ExitCode != 0 {
		t.Errorf("ended with %s; the background jobs kept the sandbox alive?", res.Summary())
	}
	if got := string(res.Files["result.txt"]); got != "graded\n" {
		t.Errorf("result.txt = %q", got)
	}
	if left := processesOf(t, uidOf(t, u)); len(left) > 0 {
		t.Errorf("processes of the sandbox user survived the run: %q", left)
	}
}

// Collect runs as root: it must not follow the program's links out of the
// directory, hang on a FIFO, or keep more than CollectSize.
func TestCollectCannotBeTricked(t *testing.T) {
	u := needSandbox(t)
	secret := "SECRET-" + randHex(8)
	visible := hostDir(t, 0o755)
	if err := os.WriteFile(filepath.Join(visible, "key.pem"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `ln -s "$1/key.pem" link.json; ln -s /etc/shadow shadow.txt; mkfifo fifo; mkdir d; ln -s "$1" d/out
head -c 3000 /dev/zero > big.bin; echo ok > fine.txt; ln -s fine.txt inner.txt`
	res := mustRun(t, Spec{User: u, ReadOnly: []string{visible}, Argv: []string{"sh", "-c", script, "sh", visible},
		Collect: []string{"link.json", "shadow.txt", "fifo", "d/out/key.pem", "big.bin", "fine.txt", "inner.txt"},
		Limits:  Limits{CollectSize: 1000}})
	for _, name := range []string{"link.json", "shadow.txt", "fifo", "d/out/key.pem"} {
		if _, ok := res.Files[name]; ok {
			t.Errorf("collected %s, which is not a regular file in the directory", name)
		}
	}
	for name, data := range res.Files {
		if strings.Contains(string(data), secret) || strings.Contains(string(data), "root:") {
			t.Errorf("collected %s holds a host file", name)
		}
	}
	// A link that stays inside the directory is harmless and followed.
	if string(res.Files["fine.txt"]) != "ok\n" || string(res.Files["inner.txt"]) != "ok\n" {
		t.Errorf("fine.txt = %q, inner.txt (a link to it) = %q", res.Files["fine.txt"], res.Files["inner.txt"])
	}
	if len(res.Files["big.bin"]) != 1000 || !slices.Equal(res.Truncated, []string{"big.bin"}) {
		t.Errorf("big.bin kept %d bytes, truncated %q; want 1000 and [big.bin]", len(res.Files["big.bin"]), res.Truncated)
	}
}

func TestSetupFailuresAreErrors(t *testing.T) {
	u := needSandbox(t)
	ctx := context.Background()
	if _, err := Run(ctx, Spec{User: u, Argv: []string{"no-such-grader-" + randHex(4)}}); err == nil || !strings.Contains(err.Error(), "not found in the sandbox's PATH") {
		t.Errorf("a missing program: %v", err)
	}
	if _, err := Run(ctx, Spec{User: u, Argv: []string{"true"}, Files: []File{{Name: "big", Data: make([]byte, 2<<20)}},
		Limits: Limits{Disk: 1 << 20}}); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("files larger than the disk: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	if _, err := Run(cctx, Spec{User: u, Argv: []string{"sleep", "600"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled run: %v", err)
	}
	if left := processesOf(t, uidOf(t, u)); len(left) > 0 {
		t.Errorf("processes of the sandbox user survived a cancelled run: %q", left)
	}
}

func TestSourceFilesAreCopied(t *testing.T) {
	u := needSandbox(t)
	src := filepath.Join(t.TempDir(), "autograder.zip")
	if err := os.WriteFile(src, []byte("zip bytes"), 0o600); err != nil { // readable by the service only
		t.Fatal(err)
	}
	res := mustRun(t, Spec{User: u, Files: []File{{Name: "autograder.zip", Source: src}}, Argv: []string{"cat", "autograder.zip"}})
	if string(res.Stdout) != "zip bytes" || res.ExitCode != 0 {
		t.Errorf("copied file read %q, %s", res.Stdout, res.Summary())
	}
}

// BenchmarkRunTrue measures one sandbox around `true`; run with
// -bench RunTrue -benchtime 20x for the median of 20, with
// LTIGRADE_SANDBOX_BENCH_BIN=path/to/ltigrade to start that binary.
func BenchmarkRunTrue(b *testing.B) {
	if os.Geteuid() != 0 || testUser == "" || Available() != nil {
		b.Skip("needs root, namespaces and useradd")
	}
	if bin := os.Getenv("LTIGRADE_SANDBOX_BENCH_BIN"); bin != "" { // a built ltigrade, to time its start-up instead
		executable = bin
		defer func() { executable = "/proc/self/exe" }()
	}
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := Run(context.Background(), Spec{User: testUser, Argv: []string{"true"}})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("%v %+v", err, res)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
}

// The program runs under the limits it was given.
func TestLimitsApplyToTheProgram(t *testing.T) {
	u := needSandbox(t)
	res := mustRun(t, Spec{User: u, Argv: []string{"cat", "/proc/self/limits"}, Limits: Limits{
		CPU: 7 * time.Second, Memory: 300 << 20, Processes: 33, FileSize: 5 << 20, OpenFiles: 77}})
	for _, want := range [][]string{
		{"Max cpu time", "7", "8"},
		{"Max file size", "5242880", "5242880"},
		{"Max core file size", "0", "0"},
		{"Max processes", "33", "33"},
		{"Max open files", "77", "77"},
		{"Max address space", "314572800", "314572800"},
	} {
		found := false
		for _, line := range strings.Split(string(res.Stdout), "\n") {
			if f := strings.Fields(strings.TrimPrefix(line, want[0])); strings.HasPrefix(line, want[0]) && len(f) >= 2 {
				found = true
				if f[0] != want[1] || f[1] != want[2] {
					t.Errorf("%s: soft %s hard %s, want %s %s", want[0], f[0], f[1], want[1], want[2])
				}
			}
		}
		if !found {
			t.Errorf("no %q in /proc/self/limits", want[0])
		}
	}
}

func TestMemoryLimitStopsAHog(t *testing.T) {
	u := needSandbox(t)
	py := needPython(t)
	res := mustRun(t, Spec{User: u, Argv: []string{py, "-c", `
try:
    b = bytearray(1 << 30)
    print("allocated")
except MemoryError:
    print("MemoryError")
`}, Limits: Limits{Memory: 256 << 20}})
	if strings.TrimSpace(string(res.Stdout)) != "MemoryError" {
		t.Errorf("allocating 1 GiB under a 256 MiB limit: %s, stdout %q", res.Summary(), res.Stdout)
	}
}

// Workers run sandboxes side by side, as the same user.
func TestConcurrentRuns(t *testing.T) {
	u := needSandbox(t)
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			res, err := Run(context.Background(), Spec{User: u, Files: []File{{Name: "n", Data: []byte(strconv.Itoa(i))}},
				Argv: []string{"sh", "-c", "cat n; cat n > out"}, Collect: []string{"out"}})
			switch {
			case err != nil:
				errs <- err
			case string(res.Stdout) != strconv.Itoa(i) || string(res.Files["out"]) != strconv.Itoa(i):
				errs <- fmt.Errorf("run %d saw %q and collected %q", i, res.Stdout, res.Files["out"])
			default:
				errs <- nil
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A killed sandbox leaves no mount, directory or process on the host.
func TestTimeoutLeavesNothingBehind(t *testing.T) {
	u := needSandbox(t)
	before := hostMountPoints(t)
	_, statErr := os.Stat(WorkDir)
	res := mustRun(t, Spec{User: u, Files: []File{{Name: "f", Data: []byte("x")}},
		Argv: []string{"sh", "-c", "sleep 600 & sleep 600"}, Limits: Limits{Wall: 500 * time.Millisecond}})
	if !res.TimedOut {
		t.Fatalf("expected a timeout, got %s", res.Summary())
	}
	after := hostMountPoints(t)
	for mp := range after {
		if !before[mp] {
			t.Errorf("new mount on the host after the run: %s", mp)
		}
	}
	if _, err := os.Stat(WorkDir); errors.Is(statErr, os.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s appeared on the host", WorkDir)
	}
	if left := processesOf(t, uidOf(t, u)); len(left) > 0 {
		t.Errorf("processes of the sandbox user survived: %q", left)
	}
}

func hostMountPoints(t *testing.T) map[string]bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mps := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			mps[f[4]+" "+f[len(f)-3]] = true // mount point and file system type
		}
	}
	return mps
}

// The service runs the sandbox through ltigrade's hidden command: build the
// real binary and let Run start it.
func TestLtigradeBinaryRunsTheSandbox(t *testing.T) {
	u := needSandbox(t)
	if testing.Short() {
		t.Skip("builds ltigrade")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build ltigrade with")
	}
	bin := filepath.Join(t.TempDir(), "ltigrade")
	build := exec.Command(goBin, "build", "-o", bin, "github.com/ltigrade/ltigrade/cmd/ltigrade")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	executable = bin
	defer func() { executable = "/proc/self/exe" }()
	res := mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", "id -u; echo hi > out"}, Collect: []string{"out"}})
	if strings.TrimSpace(string(res.Stdout)) != uidOf(t, u) || string(res.Files["out"]) != "hi\n" {
		t.Errorf("through ltigrade: stdout %q, files %q", res.Stdout, res.Files)
	}
	// By hand it explains itself instead of doing anything.
	out, err := exec.Command(bin, ExecCommand, "init").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not by hand") {
		t.Errorf("by hand: %v: %s", err, out)
	}
}

// A descriptor the service holds without close-on-exec (one inherited from
// its own parent, or opened by a C library) must not reach the program.
func TestServiceDescriptorsDoNotLeak(t *testing.T) {
	u := needSandbox(t)
	secret := "SECRET-" + randHex(8)
	path := filepath.Join(t.TempDir(), "ltigrade.db")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	const high = 200
	if err := syscall.Dup3(fd, high, 0); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(high)
	py := needPython(t)
	res := mustRun(t, Spec{User: u, Argv: []string{py, "-c", `import os
print(" ".join(sorted(os.listdir("/proc/self/fd"))))
try:
    print(os.read(200, 100))
except OSError as e:
    print("read failed", e.errno)
`}})
	if strings.Contains(string(res.Stdout)+string(res.Stderr), secret) {
		t.Errorf("the program read the service's open file")
	}
	// listdir's own descriptor is 3; nothing else beyond the streams.
	if lines := strings.Split(string(res.Stdout), "\n"); lines[0] != "0 1 2 3" || lines[1] != "read failed 9" {
		t.Errorf("the program has descriptors %q and read %q, want only 0 1 2 (and listdir's 3) and EBADF", lines[0], lines[1])
	}
}

// Scripts write to /dev/stdout and /dev/stderr by path: that must reach the
// streams. The rest of /dev is a minimal set, not the host's devices.
func TestDevIsMinimalAndWorks(t *testing.T) {
	u := needSandbox(t)
	res := mustRun(t, Spec{User: u, Argv: []string{"sh", "-c", `echo to-out > /dev/stdout; echo to-err > /dev/stderr
echo x > /dev/null && head -c 4 /dev/urandom | wc -c && head -c 2 /dev/zero | wc -c; ls /dev; touch /dev/new`}})
	if !strings.HasPrefix(string(res.Stdout), "to-out\n4\n2\n") || !strings.HasPrefix(string(res.Stderr), "to-err\n") {
		t.Errorf("writing /dev/stdout, /dev/stderr, /dev/null or reading /dev/urandom, /dev/zero failed")
	}
	devs := strings.Fields(strings.TrimPrefix(string(res.Stdout), "to-out\n4\n2\n"))
	want := []string{"fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
	if !slices.Equal(devs, want) {
		t.Errorf("/dev holds %q, want %q", devs, want)
	}
	if !strings.Contains(string(res.Stderr), "/dev/new") {
		t.Errorf("the program could create a file in /dev")
	}
}

// Of the host, the sandbox sees the system (SystemPaths) and the paths it
// is given, nothing else: not the service's /var/lib, the students' /home,
// /root, or the sockets in /run.
func TestOnlyTheSystemAndGivenPathsAreVisible(t *testing.T) {
	u := needSandbox(t)
	listed, unlisted := hostDir(t, 0o755), hostDir(t, 0o755)
	for _, d := range []string{listed, unlisted} {
		if err := os.WriteFile(filepath.Join(d, "public.txt"), []byte("public "+filepath.Base(d)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// ltigrade's own configuration directory is emptied even inside a
	// visible path (here one made for the test, as /etc/ltigrade is real).
	hiddenDir := filepath.Join(listed, "config")
	if err := os.Mkdir(hiddenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hiddenDir, "config.toml"), []byte("secret = 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := HiddenPaths
	HiddenPaths = append(slices.Clone(old), hiddenDir)
	defer func() { HiddenPaths = old }()
	res := mustRun(t, Spec{User: u, ReadOnly: []string{listed}, Argv: []string{"sh", "-c", `ls /; echo ---; cat "$1/public.txt"; echo; cat "$2/public.txt"; ls -A "$1/config"; ls /home /root /run /srv /var/lib/dpkg`,
		"sh", listed, unlisted}})
	top := strings.Fields(strings.SplitN(string(res.Stdout), "---", 2)[0])
	allowed := []string{"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "sys", "tmp", "usr", "var"}
	for _, d := range top {
		if !slices.Contains(allowed, d) {
			t.Errorf("the sandbox's / shows %s", d)
		}
	}
	if !strings.Contains(string(res.Stdout), "public "+filepath.Base(listed)) {
		t.Errorf("the listed path was not visible")
	}
	if strings.Contains(string(res.Stdout), "public "+filepath.Base(unlisted)) {
		t.Errorf("an unlisted host directory was visible")
	}
	if strings.Contains(string(res.Stdout), "config.toml") {
		t.Errorf("a hidden path showed its files")
	}
	for _, d := range []string{"/home", "/root", "/run", "/srv", "/var/lib/dpkg"} {
		if !strings.Contains(string(res.Stderr), "cannot access '"+d+"': No such file") {
			t.Errorf("%s is visible in the sandbox", d)
		}
	}
}

// A unix socket on the host is not fenced by the network namespace: what
// the sandbox cannot see it cannot connect to (PostgreSQL's 0777 socket,
// D-Bus, Docker in /run; a service's socket in /var/lib).
func TestHostUnixSocketsAreUnreachable(t *testing.T) {
	u := needSandbox(t)
	py := needPython(t)
	dir := hostDir(t, 0o777)
	sock := filepath.Join(dir, "service.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	script := `import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print("connected", path)
    except OSError as e:
        print("connect failed:", path, e.errno)
`
	res := mustRun(t, Spec{User: u, Argv: []string{py, "-c", script, sock, "/run/dbus/system_bus_socket", "/var/run/postgresql/.s.PGSQL.5432"}})
	if strings.Contains(string(res.Stdout), "connected") || accepted.Load() != 0 {
		t.Errorf("the sandbox connected to a host unix socket")
	}
	if n := strings.Count(string(res.Stdout), "connect failed:"); n != 3 {
		t.Errorf("%d of 3 connections reported failing; the program did not run as planned", n)
	}
}

// The stages keep this process's argv[0]: a binary that picks its command
// by argv[0] (testscript's re-exec of a test binary as "ltigrade") must
// reach the hidden command, not run its tests again inside the sandbox.
func TestStagesKeepArgv0(t *testing.T) {
	u := needSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Spec{User: u, Argv: []string{"sleep", "30"}})
		done <- err
	}()
	var found [][]string
	for len(found) == 0 {
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before its stages were seen", err)
		case <-time.After(10 * time.Millisecond):
		}
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, d := range dirs {
			b, _ := os.ReadFile(d)
			// Only this test's own stages: other test binaries on the
			// machine may run sandboxes at the same time.
			if args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"); len(args) == 3 && args[1] == ExecCommand &&
				descendsFrom(filepath.Base(filepath.Dir(d)), os.Getpid()) {
				found = append(found, args)
			}
		}
	}
	cancel()
	<-done
	for _, args := range found {
		if args[0] != os.Args[0] {
			t.Errorf("stage %s runs as %q, want this binary's argv[0] %q", args[2], args[0], os.Args[0])
		}
	}
}

// descendsFrom reports whether process pid has root among its ancestors.
func descendsFrom(pid string, root int) bool {
	for range 64 {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return false
		}
		// The command name (field 2) is in parentheses and may hold spaces.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			return false
		}
		if pid = f[1]; pid == strconv.Itoa(root) {
			return true
		}
		if pid == "0" || pid == "1" {
			return false
		}
	}
	return false
}

// Graders run notebooks in a Jupyter kernel, which talks to its client over
// loopback TCP: the sandbox's own loopback must carry it. Opt-in (a venv is
// slow to build): LTIGRADE_GRADER_PYTHON=<venv>/bin/python with nbconvert
// and ipykernel, e.g. GRADER_PYTHON from scripts/grader-env.sh.
func TestJupyterKernelRunsInside(t *testing.T) {
	py := os.Getenv("LTIGRADE_GRADER_PYTHON")
	if py == "" {
		t.Skip("set LTIGRADE_GRADER_PYTHON to a venv python with nbconvert and ipykernel")
	}
	u := needSandbox(t)
	// The venv and the interpreter it was made from (which may live under
	// a home directory the sandbox does not otherwise see).
	out, err := exec.Command(py, "-c", "import sys; print(sys.prefix); print(sys.base_prefix)").Output()
	if err != nil {
		t.Fatal(err)
	}
	prefixes := strings.Fields(string(out))
	nb := `{"cells":[{"cell_type":"code","execution_count":null,"id":"a","metadata":{},"outputs":[],"source":["print(6 * 7)"]}],
 "metadata":{"kernelspec":{"display_name":"Python 3","language":"python","name":"python3"}},"nbformat":4,"nbformat_minor":5}`
	res := mustRun(t, Spec{User: u, ReadOnly: prefixes,
		Env:   []string{"PATH=" + filepath.Dir(py) + ":/usr/bin:/bin", "HOME={dir}", "LANG=C.UTF-8"},
		Files: []File{{Name: "nb.ipynb", Data: []byte(nb)}}, Collect: []string{"out.ipynb"},
		Argv: []string{"jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "out.ipynb", "nb.ipynb"}})
	if res.ExitCode != 0 || !strings.Contains(string(res.Files["out.ipynb"]), `"42\n"`) {
		t.Errorf("the notebook did not run in the sandbox: %s; out.ipynb %q", res.Summary(), res.Files["out.ipynb"])
	}
}

// A small seccomp filter takes away what an unprivileged program should not
// need and what widens the kernel it can reach: new user namespaces (root
// of its own, the usual step of a kernel exploit), the per-user keyrings
// (which outlive the run: one student could leave data for the next),
// io_uring, bpf, perf events and userfaultfd.
func TestSeccompFilter(t *testing.T) {
	u := needSandbox(t)
	py := needPython(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the syscall numbers below are amd64's")
	}
	script := `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    r = libc.syscall(nr, *args)
    print(name, r, ctypes.get_errno())
call("unshare-user", 272, 0x10000000)
call("clone-user", 56, 0x10000000 | 17, 0, 0, 0, 0)
call("keyctl", 250, 0, -4, 0)
call("add_key", 248, b"user", b"k", b"v", 1, -4)
call("io_uring_setup", 425, 1, None)
call("bpf", 321, 0, None, 0)
call("perf_event_open", 298, None, 0, -1, -1, 0)
call("userfaultfd", 323, 0)
call("getpid", 39)
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitpid(pid, 0)[1] >> 8)
`
	res := mustRun(t, Spec{User: u, Argv: []string{py, "-c", script}})
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			got[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for _, name := range []string{"unshare-user", "clone-user", "keyctl", "add_key", "io_uring_setup", "bpf", "perf_event_open", "userfaultfd"} {
		if got[name] != "-1 1" { // EPERM
			t.Errorf("%s: %q, want -1 EPERM", name, got[name])
		}
	}
	// Ordinary calls still work: the filter is not a blanket.
	if f := strings.Fields(got["getpid"]); len(f) == 0 || f[0] == "-1" || got["fork"] != "7" {
		t.Errorf("getpid %q, fork %q: ordinary calls failed", got["getpid"], got["fork"])
	}
}

// A read-only path that is a link into the sandbox's own directories (here
// the host's /tmp, where the sandbox's root is built) is refused.
func TestReadOnlyLinkIntoTmpIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory in /var/lib")
	}
	link := filepath.Join(hostDir(t, 0o755), "venv")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := prepare(Spec{User: "root", Argv: []string{"true"}, ReadOnly: []string{link}}); err == nil || !strings.Contains(err.Error(), "the sandbox's own") {
		t.Errorf("read-only %s (a link into /tmp): %v", link, err)
	}
}
