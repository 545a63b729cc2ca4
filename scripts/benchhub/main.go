// Command benchhub measures JupyterHub login latency for LTI 1.1 launches
// with and without ltigrade's hook (issue #3, docs/benchmarks.md "Hub login
// latency"). It is a development tool run by scripts/bench-hub.sh, not part
// of ltigrade.
//
// For each mode it starts the hub the end-to-end test uses (internal/e2e:
// JupyterHub 5, LTI11Authenticator, SimpleLocalProcessSpawner, the npm
// configurable-http-proxy, on loopback), with ltigrade's installed hook
// (mode "hook") or without it (mode "bare"), and `ltigrade sandbox` as the
// LMS. Each launch GETs a freshly signed form from the sandbox (not timed),
// then POSTs it to /hub/lti/launch and times the POST until the hub's
// redirect response: authentication, signature check, post_auth_hook (with
// the hook: `ltigrade record` to completion), user lookup, cookie. The
// redirect is not followed, so no single-user server is spawned and the
// spawner plays no part; the tool checks that none was.
//
//	benchhub -ltigrade BIN -env HUBENV [-n 200] [-c 20] [-students 20] [-warmup 40] [-rounds 2]
//	benchhub -ltigrade BIN -record-only [-n 200] [-c 20] [-students 20]
//
// -record-only times what the hook waits for, without a hub: `ltigrade
// record -` processes fed the launch JSON the hook builds.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	consumerKey    = "bench-key"
	consumerSecret = "bench-s3cr3t"
)

var (
	flagBin      = flag.String("ltigrade", "bin/ltigrade", "ltigrade binary (the hook runs it)")
	flagEnv      = flag.String("env", "", "KEY=VALUE output of scripts/hub-env.sh")
	flagN        = flag.Int("n", 200, "timed launches per mode and round")
	flagC        = flag.Int("c", 20, "launches in flight at once")
	flagStudents = flag.Int("students", 20, "distinct students launching")
	flagWarmup   = flag.Int("warmup", 40, "untimed launches first (every student at least once: the hub creates users)")
	flagRounds   = flag.Int("rounds", 2, "rounds; each runs both modes, in alternating order, on fresh hubs")
	flagTimeout  = flag.String("record-timeout", "5s", "[hub] record_timeout of the hook")
	flagKeep     = flag.Bool("keep", false, "keep the temporary directories")
	flagRecord   = flag.Bool("record-only", false, "no hub: time `ltigrade record -` processes alone, -n of them, -c at a time")
)

// children are the process groups to kill on exit.
var (
	childMu  sync.Mutex
	children = map[int]string{}
	tmpDirs  []string
)

func main() {
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cleanup()
		os.Exit(130)
	}()
	err := run()
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchhub:", err)
		os.Exit(1)
	}
}

type result struct {
	mode  string
	round int
	lat   []time.Duration
	wall  time.Duration
}

// loadBefore is the 1-minute load average when the run started: other work
// on the machine shows up in every figure.
var loadBefore = loadavg()

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func run() error {
	bin, err := filepath.Abs(*flagBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("ltigrade binary: %v (run make build)", err)
	}
	if *flagRecord {
		return recordOnly(bin)
	}
	env, err := readEnv(*flagEnv)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchhub: %d rounds × {bare, hook}: %d timed launches each, %d in flight, %d students, %d warm-up; %d CPUs\n",
		*flagRounds, *flagN, *flagC, *flagStudents, *flagWarmup, runtime.NumCPU())
	var results []result
	for r := 1; r <= *flagRounds; r++ {
		modes := []string{"bare", "hook"}
		if r%2 == 0 {
			modes = []string{"hook", "bare"}
		}
		for _, m := range modes {
			res, err := runMode(env, bin, m, r)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, m, err)
			}
			fmt.Fprintf(os.Stderr, "benchhub: round %d %-4s %s\n", r, m, summary(res.lat))
			results = append(results, res)
		}
	}
	report(results, env)
	return nil
}

// runMode starts a fresh hub (with or without the hook) and sandbox and
// times the launches.
func runMode(env map[string]string, bin, mode string, round int) (result, error) {
	tmp, err := os.MkdirTemp("", "benchhub-"+mode+"-")
	if err != nil {
		return result{}, err
	}
	tmpDirs = append(tmpDirs, tmp)
	defer stopAll()

	cfg, db, spool, err := writeConfig(tmp)
	if err != nil {
		return result{}, err
	}
	// Create the database and its schema first, as a hub that ran before
	// would have: 20 first-ever records at once can race on the creation.
	if out, err := exec.Command(bin, "--config", cfg, "sessions", "list").CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("ltigrade sessions list: %v\n%s", err, out)
	}
	subconfig := ""
	if mode == "hook" {
		confd := filepath.Join(tmp, "confd")
		os.MkdirAll(confd, 0o755)
		if out, err := exec.Command(bin, "--config", cfg, "hub", "install", "--config-dir", confd).CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("ltigrade hub install: %v\n%s", err, out)
		}
		subconfig = filepath.Join(confd, "ltigrade.py")
	}
	hubURL, pidDir, err := startHub(env, tmp, subconfig)
	if err != nil {
		return result{}, err
	}
	sandboxURL, err := startSandbox(bin, cfg, tmp, hubURL)
	if err != nil {
		return result{}, err
	}

	students := make([]string, *flagStudents)
	for i := range students {
		students[i] = fmt.Sprintf("student%02d", i+1)
	}
	assignments := []string{"hw1", "hw2"}
	launch := func(k int) (string, string) {
		return students[k%len(students)], assignments[(k/len(students))%len(assignments)]
	}

	if _, _, err := load(sandboxURL, *flagWarmup, *flagC, launch); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	lat, wall, err := load(sandboxURL, *flagN, *flagC, func(k int) (string, string) { return launch(k + *flagWarmup) })
	if err != nil {
		return result{}, err
	}

	// Sanity: no server was spawned, and with the hook every launch was
	// recorded (none spooled), so the hook did its whole job in the time.
	if files, _ := filepath.Glob(filepath.Join(pidDir, "singleuser-*.pid")); len(files) > 0 {
		return result{}, fmt.Errorf("%d single-user servers were spawned; the timing would include them", len(files))
	}
	if mode == "hook" {
		// The hook records in the background after each login: wait (a
		// bounded time) until every launch is stored and the spool is empty.
		var all []json.RawMessage
		var ents []os.DirEntry
		lagStart := time.Now()
		for deadline := time.Now().Add(60 * time.Second); ; {
			out, err := exec.Command(bin, "--config", cfg, "sessions", "list", "--all", "--json").Output()
			if err != nil {
				return result{}, fmt.Errorf("sessions list: %v", err)
			}
			all = nil
			if err := json.Unmarshal(out, &all); err != nil {
				return result{}, fmt.Errorf("sessions list: %v", err)
			}
			ents, _ = os.ReadDir(spool)
			spooled := 0
			for _, e := range ents {
				if !e.IsDir() {
					spooled++
				}
			}
			if len(all) == *flagWarmup+*flagN && spooled == 0 {
				break
			}
			if time.Now().After(deadline) {
				return result{}, fmt.Errorf("the hook recorded %d launches of %d; %d still spooled after 60 s", len(all), *flagWarmup+*flagN, spooled)
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "benchhub: round %d: every launch recorded %.0f ms after the last login answered\n",
			round, float64(time.Since(lagStart).Microseconds())/1000)
		_ = db
	}
	return result{mode: mode, round: round, lat: lat, wall: wall}, nil
}

// load runs n launches, c at a time, and returns each POST's latency.
func load(sandboxURL string, n, c int, launch func(int) (string, string)) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One browser per worker: keep-alive connections, no cookies
			// (each launch logs in afresh, as from the LMS).
			client := &http.Client{
				Timeout:       60 * time.Second,
				Transport:     &http.Transport{MaxIdleConnsPerHost: 2},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			for {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				student, assignment := launch(k)
				d, err := oneLaunch(client, sandboxURL, student, assignment)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("launch %d (%s/%s): %w", k, student, assignment, err) })
					return
				}
				lat[k] = d
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func oneLaunch(client *http.Client, sandboxURL, student, assignment string) (time.Duration, error) {
	req, _ := http.NewRequest("GET", sandboxURL+"/launch.json?"+url.Values{"student": {student}, "assignment": {assignment}}.Encode(), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("sandbox /launch.json: %s: %s", resp.Status, body)
	}
	var f struct {
		Action string            `json:"action"`
		Params map[string]string `json:"params"`
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return 0, fmt.Errorf("sandbox /launch.json: %v", err)
	}
	form := url.Values{}
	for k, v := range f.Params {
		form.Set(k, v)
	}
	req, _ = http.NewRequest("POST", f.Action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	start := time.Now()
	resp, err = client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return 0, fmt.Errorf("POST %s: %s, want a redirect", f.Action, resp.Status)
	}
	return d, nil
}

func writeConfig(tmp string) (cfg, db, spool string, err error) {
	secret := filepath.Join(tmp, "consumer.secret")
	if err = os.WriteFile(secret, []byte(consumerSecret+"\n"), 0o600); err != nil {
		return
	}
	db = filepath.Join(tmp, "var", "ltigrade.db")
	spool = filepath.Join(tmp, "var", "spool")
	cfg = filepath.Join(tmp, "config.toml")
	err = os.WriteFile(cfg, fmt.Appendf(nil, "database = %q\n[paths]\nhome = %q\n[[lti11.consumers]]\nkey = %q\nsecret_file = %q\n[hub]\nspool_dir = %q\nrecord_timeout = %q\n",
		db, filepath.Join(tmp, "home", "jupyter-{username}"), consumerKey, secret, spool, *flagTimeout), 0o600)
	return
}

func py(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// startHub mirrors internal/e2e's hub (same authenticator, spawner, proxy,
// options), with the hook's snippet loaded when subconfig is set.
func startHub(env map[string]string, tmp, subconfig string) (string, string, error) {
	dir := filepath.Join(tmp, "hub")
	pidDir := filepath.Join(dir, "pids")
	if err := os.MkdirAll(pidDir, 0o700); err != nil {
		return "", "", err
	}
	ports, err := freePorts(3)
	if err != nil {
		return "", "", err
	}
	wrapper := filepath.Join(dir, "singleuser.sh")
	os.WriteFile(wrapper, fmt.Appendf(nil, "#!/bin/sh\necho $$ > '%s'/singleuser-\"$JUPYTERHUB_USER\".pid\nexec '%s' \"$@\"\n", pidDir, env["JUPYTERHUB_SINGLEUSER"]), 0o700)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = %d
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = %d
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d"
c.ConfigurableHTTPProxy.command = [%s, %s]
c.ConfigurableHTTPProxy.pid_file = %s
c.JupyterHub.db_url = %s
c.JupyterHub.cookie_secret_file = %s
c.JupyterHub.authenticator_class = "ltiauthenticator.lti11.auth.LTI11Authenticator"
c.LTI11Authenticator.consumers = {%s: %s}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = %s
c.Spawner.cmd = [%s]
c.Spawner.args = ["--allow-root"]
`, ports[0], ports[2], ports[1], py(env["NODE"]), py(env["CHP"]), py(filepath.Join(pidDir, "proxy.pid")),
		py("sqlite:///"+filepath.Join(dir, "jupyterhub.sqlite")), py(filepath.Join(dir, "cookie_secret")),
		py(consumerKey), py(consumerSecret), py(filepath.Join(tmp, "home", "jupyter-{username}")), py(wrapper))
	if subconfig != "" {
		fmt.Fprintf(&cfg, "load_subconfig(%s)\n", py(subconfig))
	}
	cfgFile := filepath.Join(dir, "jupyterhub_config.py")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		return "", "", err
	}
	cmd := exec.Command(env["JUPYTERHUB"], "-f", cfgFile)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	logFile := filepath.Join(dir, "hub.log")
	if err := start(cmd, logFile, pidDir); err != nil {
		return "", "", err
	}
	hubURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := waitOK(hubURL+"/hub/health", 90*time.Second); err != nil {
		return "", "", fmt.Errorf("jupyterhub: %v\n%s", err, tail(logFile, 30))
	}
	return hubURL, pidDir, nil
}

func startSandbox(bin, cfg, tmp, hubURL string) (string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return "", err
	}
	// The course repo is never cloned here (no spawn): any URL will do.
	args := []string{"--config", cfg, "sandbox", "--listen", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--hub-url", hubURL, "--course-repo", "https://example.org/course/materials", "--consumer-key", consumerKey}
	for i := 1; i <= *flagStudents; i++ {
		args = append(args, "--student", fmt.Sprintf("student%02d", i))
	}
	args = append(args, "--assignment", "hw1=hw1/hw1.ipynb", "--assignment", "hw2=hw2/hw2.ipynb")
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	logFile := filepath.Join(tmp, "sandbox.log")
	if err := start(cmd, logFile, ""); err != nil {
		return "", err
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := waitOK(u+"/grades.json", 30*time.Second); err != nil {
		return "", fmt.Errorf("ltigrade sandbox: %v\n%s", err, tail(logFile, 20))
	}
	return u, nil
}

// pidDirs are checked on stop for servers and proxies the hub left behind.
var pidDirs []string

func start(cmd *exec.Cmd, logFile, pidDir string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	childMu.Lock()
	children[cmd.Process.Pid] = cmd.Path
	if pidDir != "" {
		pidDirs = append(pidDirs, pidDir)
	}
	childMu.Unlock()
	go func() { cmd.Wait(); f.Close() }()
	return nil
}

// stopAll stops every process group started (SIGTERM, then SIGKILL), then
// whatever the hubs left in their pid files.
func stopAll() {
	childMu.Lock()
	defer childMu.Unlock()
	for pid := range children {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := range children {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			if isZombie(pid) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		syscall.Kill(-pid, syscall.SIGKILL)
		delete(children, pid)
	}
	for _, d := range pidDirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.pid"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 1 {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if bytes.Contains(cmdline, []byte("jupyterhub-singleuser")) || bytes.Contains(cmdline, []byte("configurable-http-proxy")) {
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	pidDirs = nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func cleanup() {
	stopAll()
	if !*flagKeep {
		for _, d := range tmpDirs {
			os.RemoveAll(d)
		}
	} else if len(tmpDirs) > 0 {
		fmt.Fprintf(os.Stderr, "benchhub: kept %s\n", strings.Join(tmpDirs, " "))
	}
}

func waitOK(u string, timeout time.Duration) error {
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept", "*/*")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s (%v)", u, timeout, last)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LTIGRADE_") {
			env = append(env, kv)
		}
	}
	return env
}

func readEnv(file string) (map[string]string, error) {
	var out []byte
	var err error
	if file == "" {
		return nil, errors.New("-env is required (the output of scripts/hub-env.sh)")
	}
	if out, err = os.ReadFile(file); err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	for _, k := range []string{"JUPYTERHUB", "JUPYTERHUB_SINGLEUSER", "NODE", "CHP"} {
		if env[k] == "" {
			return nil, fmt.Errorf("%s: no %s", file, k)
		}
	}
	return env, nil
}

func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func summary(lat []time.Duration) string {
	s := slices.Clone(lat)
	slices.Sort(s)
	return fmt.Sprintf("median %s ms  p90 %s ms  p99 %s ms  max %s ms", ms(quantile(s, .5)), ms(quantile(s, .9)), ms(quantile(s, .99)), ms(s[len(s)-1]))
}

// report prints a Markdown table per round and the pooled figures, and the
// hook's cost at the median and p99.
func report(results []result, env map[string]string) {
	fmt.Printf("| round | hook | launches | median ms | p90 ms | p99 ms | max ms | launches/s |\n|---|---|---|---|---|---|---|---|\n")
	pooled := map[string][]time.Duration{}
	for _, r := range results {
		s := slices.Clone(r.lat)
		slices.Sort(s)
		hook := "without"
		if r.mode == "hook" {
			hook = "with"
		}
		fmt.Printf("| %d | %s | %d | %s | %s | %s | %s | %.0f |\n", r.round, hook, len(s), ms(quantile(s, .5)), ms(quantile(s, .9)),
			ms(quantile(s, .99)), ms(s[len(s)-1]), float64(len(s))/r.wall.Seconds())
		pooled[r.mode] = append(pooled[r.mode], r.lat...)
	}
	fmt.Println()
	med, p99 := map[string]time.Duration{}, map[string]time.Duration{}
	for _, m := range []string{"bare", "hook"} {
		s := pooled[m]
		slices.Sort(s)
		med[m], p99[m] = quantile(s, .5), quantile(s, .99)
	}
	fmt.Printf("Per-round medians and p99s above; the hook's added latency, each round's (with − without):\n\n")
	byRound := map[int]map[string][]time.Duration{}
	for _, r := range results {
		if byRound[r.round] == nil {
			byRound[r.round] = map[string][]time.Duration{}
		}
		s := slices.Clone(r.lat)
		slices.Sort(s)
		byRound[r.round][r.mode] = s
	}
	for r := 1; r <= len(byRound); r++ {
		b, h := byRound[r]["bare"], byRound[r]["hook"]
		fmt.Printf("- round %d: median +%s ms, p99 +%s ms\n", r, ms(quantile(h, .5)-quantile(b, .5)), ms(quantile(h, .99)-quantile(b, .99)))
	}
	fmt.Printf("- all rounds pooled: without median %s / p99 %s ms; with median %s / p99 %s ms; added median +%s ms, p99 +%s ms\n",
		ms(med["bare"]), ms(p99["bare"]), ms(med["hook"]), ms(p99["hook"]), ms(med["hook"]-med["bare"]), ms(p99["hook"]-p99["bare"]))
	fmt.Printf("\n(%d CPUs, %s, load average before/after %s / %s; %s)\n", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH,
		loadBefore, loadavg(), env["HUB_PINS"])
}

// recordOnly runs n `ltigrade record -` processes, c at a time, on a fresh
// database, each fed a launch like the ones the hook sends, and prints the
// distribution of their wall times.
func recordOnly(bin string) error {
	tmp, err := os.MkdirTemp("", "benchhub-record-")
	if err != nil {
		return err
	}
	tmpDirs = append(tmpDirs, tmp)
	cfg, _, _, err := writeConfig(tmp)
	if err != nil {
		return err
	}
	payload := func(k int) []byte {
		student := fmt.Sprintf("student%02d", k%*flagStudents+1)
		hw := fmt.Sprintf("hw%d", (k / *flagStudents)%2+1)
		b, _ := json.Marshal(map[string]any{
			"username":     student,
			"consumer_key": consumerKey,
			"next_url":     "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fexample.org%2Fcourse%2Fmaterials&urlpath=tree%2Fmaterials%2F" + hw + "%2F" + hw + ".ipynb",
			"launched_at":  time.Now().UTC().Format(time.RFC3339Nano),
			"auth_state": map[string]string{
				"lti_message_type": "basic-lti-launch-request", "lti_version": "LTI-1p0",
				"resource_link_id": hw, "resource_link_title": hw, "user_id": student,
				"custom_canvas_user_id": student, "context_id": "bench-101", "context_title": "Bench course",
				"lis_outcome_service_url": "http://127.0.0.1:1/outcomes", "lis_result_sourcedid": "bench-101:" + hw + ":" + student,
				"roles": "Learner",
			},
		})
		return b
	}
	// One untimed record creates the database and its schema.
	cmd := exec.Command(bin, "--config", cfg, "record", "-")
	cmd.Stdin = bytes.NewReader(payload(0))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ltigrade record: %v\n%s", err, out)
	}
	lat := make([]time.Duration, *flagN)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range *flagC {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= *flagN {
					return
				}
				cmd := exec.Command(bin, "--config", cfg, "record", "-")
				cmd.Stdin = bytes.NewReader(payload(k))
				t0 := time.Now()
				out, err := cmd.CombinedOutput()
				lat[k] = time.Since(t0)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("ltigrade record: %v\n%s", err, out) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	wall := time.Since(start)
	fmt.Printf("ltigrade record alone, %d processes, %d at a time (database %s): %s, %.0f records/s\n",
		*flagN, *flagC, filepath.Join(tmp, "var"), summary(lat), float64(*flagN)/wall.Seconds())
	fmt.Printf("(%d CPUs, load average before/after %s / %s)\n", runtime.NumCPU(), loadBefore, loadavg())
	return nil
}
