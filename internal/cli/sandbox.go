package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/lmssim"
)

type sandboxFlags struct {
	listen, publicURL, hubURL, repo, branch string
	key, secretFile, urlFile                string
	students, assignments                   []string
	courseID, courseTitle                   string
	// LTI 1.3
	lti13                          bool
	clientID, deploymentID, issuer string
	toolJWKS                       string
}

func newSandboxCmd(app *App) *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Serve a small trial LMS that launches students into your hub and collects their grades",
		Long: `Serve a small LMS for trying a hub before wiring a real one. Its page lists a few
students and assignments; each "launch" button posts a signed LTI 1.1 launch to
<hub-url>/hub/lti/launch with an nbgitpuller link to the course repository in next=,
so the hub logs the student in, nbgitpuller clones the course, and the hook records
the launch. Grades sent back (ltigrade score) land in its grade book.

  GET  /             the course page            GET /gradebook    the grade book
  GET  /launch       ?student=S&assignment=A    GET /grades.json  the grade book as JSON
  GET  /launch.json  the same launch as {"action": URL, "params": {...}}, for test drivers
  POST /outcomes     LTI 1.1 Basic Outcomes (signatures checked)

The hub must know the consumer key and secret (c.LTI11Authenticator.consumers). The
secret comes from the [[lti11.consumers]] entry of --consumer-key, or --secret-file
(mode 600). Launches are signed when the page is served: ltiauthenticator accepts
them for 30 seconds. The hub username is the student's name (sent as user_id and
custom_canvas_user_id, ltiauthenticator's default username_key).

Settings from [sandbox] in the config file (listen, hub_url, course_repo,
consumer_key) are overridden by the flags. The first line printed is the sandbox's
URL. Anyone who can open the sandbox can log into the hub as its students: keep it
on loopback (the default) and stop it with Ctrl-C when done.

With --lti13 it is an LTI 1.3 platform instead, for a hub with ltiauthenticator's
LTI13Authenticator: "launch" starts an OpenID Connect login at
<hub-url>/hub/lti13/oauth_login; its authorization endpoint (/auth) answers the hub
with an id_token signed by the sandbox's own key (published at /jwks), whose
target_link_uri carries the nbgitpuller link in next=. Its token endpoint (/token)
checks ltigrade's client assertions against ltigrade's public keys: those of the
config's [[lti13.platforms]] private_key_file, or the JWKS in --tool-jwks (the
output of ltigrade keys jwks). It serves the Assignment and Grade Services
(/lineitems: list, create, scores, results) and the course roster
(/contexts/<course-id>/memberships). The hub username is the student's email,
<name>@lms.test, with LTI13Authenticator's default username_key. It prints the
hub's settings (issuer, client_id, authorize_url, jwks_endpoint) and ltigrade's
[[lti13.platforms]] entry; the issuer is the sandbox's URL unless --issuer says.

  GET  /lti13/login  ?student=S&assignment=A: the login initiation (an auto-submitting form)
  GET  /lti13/login.json  the same as {"action": URL, "params": {...}}, for test drivers
  GET  /gradebook, /scores.json  the scores received`,
		Example: `  ltigrade sandbox --hub-url http://127.0.0.1:8000 --course-repo https://github.com/org/course
  ltigrade sandbox --course-repo /srv/git/course.git --student ann --student ben \
      --assignment week1=week1/intro.ipynb --assignment week2=week2/lists.ipynb
  ltigrade sandbox --listen 127.0.0.1:0 --url-file /tmp/sandbox.url --consumer-key k --secret-file k.secret
  ltigrade sandbox --lti13 --course-repo https://github.com/org/course --client-id trial-hub`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runSandbox(app, cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "address to serve on (config sandbox.listen; default 127.0.0.1:8765; port 0 picks a free port)")
	fl.StringVar(&f.publicURL, "public-url", "", "URL the hub and browsers reach the sandbox at (default http://<listen address>); the outcome service URL is built from it")
	fl.StringVar(&f.hubURL, "hub-url", "", "the hub's URL, with its base_url if any (config sandbox.hub_url; default http://127.0.0.1:8000)")
	fl.StringVar(&f.repo, "course-repo", "", "git repository nbgitpuller clones for the course (config sandbox.course_repo)")
	fl.StringVar(&f.branch, "branch", "", "branch of the course repository (default: nbgitpuller uses the repository's default branch)")
	fl.StringVar(&f.key, "consumer-key", "", "LTI consumer key to sign with (config sandbox.consumer_key; default the first [[lti11.consumers]] key)")
	fl.StringVar(&f.secretFile, "secret-file", "", "file holding the consumer secret (mode 600), instead of the config's [[lti11.consumers]] entry")
	fl.StringSliceVar(&f.students, "student", []string{"alice", "bob", "carol"}, "student (hub username; with --lti13 the LTI 1.3 sub, and the hub username is <name>@lms.test), repeatable")
	fl.StringArrayVar(&f.assignments, "assignment", []string{"hw1=hw1/hw1.ipynb", "hw2=hw2/hw2.ipynb"}, "assignment as ID=PATH, PATH being the notebook inside the course repository; repeatable")
	fl.StringVar(&f.courseID, "course-id", "sandbox-101", "course id (LTI context_id and context_label)")
	fl.StringVar(&f.courseTitle, "course-title", "Sandbox course", "course title (LTI context_title)")
	fl.StringVar(&f.urlFile, "url-file", "", "write the sandbox's URL to this file once it is listening (for scripts)")
	fl.BoolVar(&f.lti13, "lti13", false, "be an LTI 1.3 platform (OpenID Connect logins, AGS, NRPS) instead of an LTI 1.1 consumer")
	fl.StringVar(&f.clientID, "client-id", "ltigrade-sandbox", "LTI 1.3: the tool registration's client id (the hub's client_id, ltigrade's client_id)")
	fl.StringVar(&f.deploymentID, "deployment-id", "deployment-1", "LTI 1.3: the deployment id of launches")
	fl.StringVar(&f.issuer, "issuer", "", "LTI 1.3: the platform's issuer (default the sandbox's URL)")
	fl.StringVar(&f.toolJWKS, "tool-jwks", "", "LTI 1.3: JWKS file of ltigrade's public keys (ltigrade keys jwks), instead of the config's [[lti13.platforms]] keys")
	return cmd
}

func runSandbox(app *App, cmd *cobra.Command, f sandboxFlags) error {
	cfg, err := app.Config()
	if err != nil {
		return err
	}
	pick := func(flag, conf string) string {
		if cmd.Flags().Changed(flag) {
			return cmd.Flags().Lookup(flag).Value.String()
		}
		return conf
	}
	listen := pick("listen", cfg.Sandbox.Listen)
	if listen == "" {
		listen = "127.0.0.1:8765"
	}
	hubURL := pick("hub-url", cfg.Sandbox.HubURL)
	if hubURL == "" {
		hubURL = "http://127.0.0.1:8000"
	}
	repo := pick("course-repo", cfg.Sandbox.CourseRepo)
	if strings.TrimSpace(repo) == "" {
		return usageErr("no course repository: set --course-repo or course_repo in [sandbox] of the config")
	}
	course := lmssim.Course{ID: f.courseID, Label: f.courseID, Title: f.courseTitle, Repo: repo, Branch: f.branch}
	for _, s := range f.students {
		course.Students = append(course.Students, lmssim.Student{Name: s})
	}
	for _, a := range f.assignments {
		id, p, ok := strings.Cut(a, "=")
		if !ok || id == "" || p == "" {
			return usageErr("--assignment %q must be ID=PATH, e.g. hw1=hw1/hw1.ipynb", a)
		}
		course.Assignments = append(course.Assignments, lmssim.Assignment{ID: id, Path: p})
	}
	if f.lti13 {
		for _, fl := range []string{"consumer-key", "secret-file"} {
			if cmd.Flags().Changed(fl) {
				return usageErr("--%s is for LTI 1.1 launches; with --lti13 the sandbox signs with its own key", fl)
			}
		}
		return runSandbox13(app, cfg, f, course, listen, hubURL)
	}
	key := pick("consumer-key", cfg.Sandbox.ConsumerKey)
	if key == "" {
		return usageErr("no consumer key: set --consumer-key, consumer_key in [sandbox], or add an [[lti11.consumers]] entry")
	}
	b := lmssim.LaunchBuilder{HubURL: hubURL, Key: key, Course: course}
	// Check the course before reading the secret or binding a port, so a
	// typo fails fast with exit 2.
	if err := b.Validate(); err != nil {
		return usageErr("sandbox: %v", err)
	}

	if f.secretFile != "" {
		if b.Secret, err = readSandboxSecret(f.secretFile); err != nil {
			return err
		}
	} else {
		secret, err := cfg.ConsumerSecret(key)
		if err != nil {
			return err
		}
		b.Secret = secret.Reveal()
	}

	ln, base, err := sandboxListen(app, listen, f.publicURL)
	if err != nil {
		return err
	}
	defer ln.Close()
	sb, err := lmssim.NewSandbox(b, base)
	if err != nil {
		return usageErr("sandbox: %v", err)
	}
	defer sb.Close()

	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(app.Out, format, a...)
	}
	base = strings.TrimRight(base, "/")
	say("%s/\n", base)
	say("ltigrade sandbox: course %q (%s), %d student%s, %d assignment%s\n", course.Title, course.ID,
		len(course.Students), plural(len(course.Students), "s"), len(course.Assignments), plural(len(course.Assignments), "s"))
	say("  launches: %s/hub/lti/launch, consumer key %q; nbgitpuller clones %s into %s\n",
		strings.TrimRight(hubURL, "/"), key, repo, lmssim.RepoDir(repo))
	say("  outcome service %s/outcomes; grade book %s/gradebook\n", base, base)
	say("Press Ctrl-C to stop.\n")
	sb.Sim().OnGrade(func(g lmssim.Grade) {
		who := g.SourcedID
		if st, a, ok := sb.Who(g.SourcedID); ok {
			who = st + ", " + a
		}
		say("%s grade %s for %s\n", g.Updated.Local().Format("15:04:05"), g.Score, who)
	})

	if f.urlFile != "" {
		if err := writeFileAtomic(f.urlFile, []byte(base+"/\n")); err != nil {
			return fmt.Errorf("sandbox: --url-file: %w", err)
		}
	}

	if err := serveSandbox(app, ln, sb.Handler(), sb.Close); err != nil {
		return err
	}
	say("ltigrade sandbox: stopped\n")
	return nil
}

// sandboxListen binds the sandbox's address and works out the URL it
// announces: --public-url, else the bound address (loopback when it is
// unspecified), warning when others can reach it.
func sandboxListen(app *App, listen, publicURL string) (net.Listener, string, error) {
	if publicURL != "" {
		if u, err := url.Parse(publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, "", usageErr("--public-url %q must be an http(s) URL such as http://hub.example.org:8765", publicURL)
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("sandbox: listen on %s: %w", listen, err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	base := publicURL
	if base == "" {
		host := addr.IP.String()
		if addr.IP.IsUnspecified() {
			host = "127.0.0.1"
			fmt.Fprintf(app.Err, "ltigrade: warning: listening on all interfaces but announcing %s; set --public-url if the hub or the browser is on another machine\n", host)
		}
		base = "http://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
	}
	if !addr.IP.IsLoopback() {
		fmt.Fprintf(app.Err, "ltigrade: warning: the sandbox listens on %s, not loopback: anyone who can reach it can log into the hub as its students\n", addr)
	}
	return ln, strings.TrimRight(base, "/"), nil
}

// serveSandbox serves h on ln until the command's context ends; closeSim
// wakes delayed handlers first, so that Shutdown does not wait for them.
func serveSandbox(app *App, ln net.Listener, h http.Handler, closeSim func() error) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sandbox: %w", err)
	case <-app.Context().Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closeSim()
	_ = srv.Shutdown(ctx)
	return nil
}

// readSandboxSecret reads --secret-file with the rules config applies to
// secret_file (config's reader is not exported): a regular file, not
// readable or writable by group or others, at most config.MaxSecretFileSize,
// trailing white space dropped. Errors name the file, never its content.
func readSandboxSecret(name string) (string, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", usageErr("--secret-file: cannot open %s: %v", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", usageErr("--secret-file: %v", err)
	}
	switch mode := fi.Mode(); {
	case !mode.IsRegular():
		return "", usageErr("--secret-file: %s is not a regular file (%s)", name, mode.Type())
	case mode.Perm()&0o077 != 0:
		return "", usageErr("--secret-file: secret file %s has mode %04o; it must not be readable or writable by group or others (chmod 600 %s)", name, mode.Perm(), name)
	case fi.Size() > config.MaxSecretFileSize:
		return "", usageErr("--secret-file: %s is larger than %d KiB; it must hold only the secret", name, config.MaxSecretFileSize>>10)
	}
	data, err := io.ReadAll(io.LimitReader(f, config.MaxSecretFileSize+1))
	if err != nil {
		return "", usageErr("--secret-file: reading %s: %v", name, err)
	}
	if len(data) > config.MaxSecretFileSize {
		return "", usageErr("--secret-file: %s is larger than %d KiB; it must hold only the secret", name, config.MaxSecretFileSize>>10)
	}
	v := strings.TrimRightFunc(string(data), unicode.IsSpace)
	if v == "" {
		return "", usageErr("--secret-file: %s is empty", name)
	}
	return v, nil
}

// writeFileAtomic writes data to name through a temporary file and a
// rename, so a script polling for the file never reads half of it.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".ltigrade-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
