package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hubOptions describe a JupyterHub for a test.
type hubOptions struct {
	Dir       string            // the hub's working directory (its sqlite, cookie secret, log)
	HomeTmpl  string            // SimpleLocalProcessSpawner.home_dir_template
	Consumers map[string]string // LTI 1.1 consumer key → secret
	Subconfig string            // file passed to load_subconfig after the authenticator is set; "" for none
	// Before is more Python config lines before load_subconfig: what a
	// site configured before ltigrade's snippet (services, roles) that the
	// snippet must keep.
	Before string
	Extra  string // more Python config lines, appended last
}

// hub is a running JupyterHub behind its configurable-http-proxy.
type hub struct {
	URL  string // the proxy's public URL, http://127.0.0.1:PORT
	Log  string // hub + proxy log file
	proc *proc
}

// py quotes s as a Python string literal (a JSON string is one).
func py(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// startHub writes a jupyterhub_config.py and starts the hub on free loopback
// ports with LTI11Authenticator, a local-process spawner whose servers dump
// their environment into $HOME/.e2e-spawn-env, and the proxy from npm. It
// returns once /hub/health answers through the proxy.
func startHub(t *testing.T, env hubEnv, o hubOptions) *hub {
	t.Helper()
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	proxyPort, apiPort, hubPort := ports[0], ports[1], ports[2]
	pidDir := filepath.Join(o.Dir, "pids")
	if err := os.MkdirAll(pidDir, 0o700); err != nil {
		t.Fatal(err)
	}

	// The single-user server wrapper: note its pid (its process group is
	// killed on cleanup even if the hub is not), dump the environment the
	// spawner gave it, then become jupyterhub-singleuser.
	wrapper := filepath.Join(o.Dir, "singleuser.sh")
	script := fmt.Sprintf(`#!/bin/sh
umask 077
echo $$ > %[1]s/singleuser-"$JUPYTERHUB_USER".pid
env > "$HOME/.e2e-spawn-env"
exec %[2]s "$@"
`, shellQuote(pidDir), shellQuote(env["JUPYTERHUB_SINGLEUSER"]))
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}

	var consumers []string
	for k, v := range o.Consumers {
		consumers = append(consumers, py(k)+": "+py(v))
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `# written by internal/e2e
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = %d
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = %d
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d"
c.ConfigurableHTTPProxy.command = [%s, %s]
c.ConfigurableHTTPProxy.pid_file = %s
c.JupyterHub.db_url = %s
c.JupyterHub.cookie_secret_file = %s
c.JupyterHub.pid_file = %s
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "ltiauthenticator.lti11.auth.LTI11Authenticator"
c.LTI11Authenticator.consumers = {%s}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = %s
c.Spawner.cmd = [%s]
c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
`, proxyPort, hubPort, apiPort, py(env["NODE"]), py(env["CHP"]),
		py(filepath.Join(pidDir, "proxy.pid")),
		py("sqlite:///"+filepath.Join(o.Dir, "jupyterhub.sqlite")),
		py(filepath.Join(o.Dir, "jupyterhub_cookie_secret")),
		py(filepath.Join(o.Dir, "jupyterhub.pid")),
		strings.Join(consumers, ", "), py(o.HomeTmpl), py(wrapper))
	cfg.WriteString(o.Before)
	if o.Subconfig != "" {
		fmt.Fprintf(&cfg, "load_subconfig(%s)\n", py(o.Subconfig))
	}
	cfg.WriteString(o.Extra)
	cfgFile := filepath.Join(o.Dir, "jupyterhub_config.py")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	h := &hub{URL: fmt.Sprintf("http://127.0.0.1:%d", proxyPort), Log: filepath.Join(o.Dir, "hub.log")}
	// Registered before the hub itself so that they run after it stopped:
	// whatever the hub did not clean up (servers, proxy) is killed here.
	t.Cleanup(func() {
		killPIDFiles(filepath.Join(pidDir, "singleuser-*.pid"), "jupyterhub-singleuser")
		killPIDFiles(filepath.Join(pidDir, "proxy.pid"), "configurable-http-proxy")
	})
	cmd := exec.Command(env["JUPYTERHUB"], "-f", cfgFile)
	cmd.Dir = o.Dir
	cmd.Env = cleanEnv()
	h.proc = startProc(t, "jupyterhub", h.Log, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the hub's log (%s):\n%s", h.Log, tail(h.Log, 80))
		}
		// Stop the user servers before the hub (runs before startProc's
		// cleanup): the hub would stop them one by one on SIGTERM.
		start := time.Now()
		signalPIDFiles(filepath.Join(pidDir, "singleuser-*.pid"), "jupyterhub-singleuser", syscall.SIGTERM, 5*time.Second)
		servers := time.Since(start)
		h.proc.stop(10 * time.Second)
		t.Logf("stopped the user servers in %s, then the hub in %s", servers.Round(time.Millisecond), (time.Since(start) - servers).Round(time.Millisecond))
	})

	deadline := time.Now().Add(90 * time.Second)
	c := &http.Client{Timeout: 5 * time.Second, Transport: acceptTransport{http.DefaultTransport}}
	for {
		resp, err := c.Get(h.URL + "/hub/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		if h.proc.exited() {
			t.Fatalf("jupyterhub exited during start-up (%v)", h.proc.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("jupyterhub did not answer %s/hub/health within 90s (last error %v)", h.URL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// acceptTransport puts an Accept header on every request, redirects
// included: JupyterHub has crashed on requests without one.
type acceptTransport struct{ base http.RoundTripper }

func (a acceptTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8")
	}
	return a.base.RoundTrip(r)
}

// browser is one student's user agent: a cookie jar, Accept on every request.
type browser struct {
	name    string
	client  *http.Client // follows redirects
	noRedir *http.Client // same jar, stops at the first response
}

func newBrowser(t *testing.T, name string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := acceptTransport{&http.Transport{DisableKeepAlives: false, MaxIdleConnsPerHost: 4}}
	return &browser{
		name:   name,
		client: &http.Client{Jar: jar, Transport: tr, Timeout: 120 * time.Second},
		noRedir: &http.Client{Jar: jar, Transport: tr, Timeout: 120 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// launchForm is the sandbox's /launch.json: where to POST and what.
type launchForm struct {
	Action string            `json:"action"`
	Params map[string]string `json:"params"`
}

func getLaunchForm(t *testing.T, sandboxURL, student, assignment string) launchForm {
	t.Helper()
	u := sandboxURL + "/launch.json?" + url.Values{"student": {student}, "assignment": {assignment}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	var f launchForm
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
	if f.Action == "" || len(f.Params) == 0 {
		t.Fatalf("GET %s: no action or params:\n%s", u, body)
	}
	return f
}

// login POSTs a signed launch to the hub and stops at the hub's answer: the
// login itself, without the spawn. It returns the status, the redirect
// target and how long the hub took.
func (b *browser) login(t *testing.T, f launchForm) (int, string, time.Duration) {
	t.Helper()
	form := url.Values{}
	for k, v := range f.Params {
		form.Set(k, v)
	}
	start := time.Now()
	resp, err := b.noRedir.Post(f.Action, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: POST %s: %v", b.name, f.Action, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s: POST %s: %s, want a redirect\n%s", b.name, f.Action, resp.Status, short(body))
	}
	return resp.StatusCode, loc, took
}

// follow GETs a hub-relative or absolute location, following redirects, and
// returns the final URL and status.
func (b *browser) follow(t *testing.T, base, loc string) (*url.URL, int) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("%s: bad redirect %q: %v", b.name, loc, err)
	}
	target := u.ResolveReference(ref).String()
	resp, err := b.client.Get(target)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", b.name, target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Request.URL, resp.StatusCode
}

// waitUserPage polls a page of the user's server until it answers 200 from
// under /user/NAME/ — which is also what lets the single-user server's OAuth
// dance set its cookie — while the browser would sit on spawn-pending.
func (b *browser) waitUserPage(t *testing.T, hubURL, user, page string, timeout time.Duration) {
	t.Helper()
	prefix := "/user/" + user + "/"
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := b.client.Get(hubURL + prefix + page)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Request.URL.Path, prefix) {
				return
			}
			last = fmt.Sprintf("%s at %s", resp.Status, resp.Request.URL)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s%s did not answer 200 within %s (last: %s)", b.name, prefix, page, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// gitPull calls nbgitpuller's API (what its /git-pull page's script does in a
// browser) and reads the event stream until the "finished" phase.
func (b *browser) gitPull(t *testing.T, hubURL, user, repo, branch, target string, timeout time.Duration) {
	t.Helper()
	q := url.Values{"repo": {repo}, "targetpath": {target}}
	if branch != "" { // as nbgitpuller's page: no branch, the repository's default
		q.Set("branch", branch)
	}
	u := hubURL + "/user/" + user + "/git-pull/api?" + q.Encode()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	c := *b.client
	c.Timeout = timeout
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", b.name, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: GET %s: %s\n%s", b.name, u, resp.Status, short(body))
	}
	var output strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var ev struct {
			Phase  string `json:"phase"`
			Output string `json:"output"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
			t.Fatalf("%s: git-pull event %q: %v", b.name, data, err)
		}
		output.WriteString(ev.Output)
		switch ev.Phase {
		case "finished":
			return
		case "error":
			t.Fatalf("%s: nbgitpuller failed:\n%s", b.name, output.String())
		}
	}
	t.Fatalf("%s: git-pull event stream ended without a finished phase (%v):\n%s", b.name, sc.Err(), output.String())
}

// short cuts a response body for a failure message.
func short(b []byte) string {
	const max = 600
	if len(b) > max {
		return string(b[:max]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}
