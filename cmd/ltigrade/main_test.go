package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ltigrade/ltigrade/internal/cli"
	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/sandbox"
	"github.com/ltigrade/ltigrade/internal/store/storetest"
)

// TestMain lets testscript run the real ltigrade as a subprocess, so every
// script exercises exit codes, stdout and stderr as users see them.
func TestMain(m *testing.M) {
	// The [sandbox] condition builds a sandbox from this test binary.
	sandbox.ChildMain()
	testscript.Main(m, map[string]func(){
		"ltigrade": func() { os.Exit(cli.Main()) },
	})
}

const (
	simKey    = "course-key"
	simSecret = "s3cr3t-never-printed-0xC0FFEE"
)

// sims holds each script's LMS simulator, keyed by its work directory.
var sims sync.Map

func simFor(ts *testscript.TestScript) *lmssim.Sim {
	v, ok := sims.Load(ts.Getenv("WORK"))
	if !ok {
		ts.Fatalf("no LMS simulator for this script")
	}
	return v.(*lmssim.Sim)
}

// TestScripts runs every testdata/script/*.txtar. Each script gets a fresh
// LMS simulator ($LMS_URL, outcome service $LMS_URL/outcomes), a config at
// $LTIGRADE_CONFIG with consumer course-key whose secret is in a 0600 file,
// a database in $WORK, and user homes under $WORK/home/jupyter-{username}.
func TestScripts(t *testing.T) { runScripts(t, "", "") }

// TestScriptsPostgres runs every script again with the database a
// PostgreSQL database of its own (created through the test server's admin
// DSN, dropped afterwards), the password in database_password_file. The
// condition [postgres] is true in this pass: scripts about the SQLite file
// itself skip with it.
func TestScriptsPostgres(t *testing.T) {
	admin, why := storetest.AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	runScripts(t, admin, "")
}

// TestScriptsPgBouncer runs every script once more on PostgreSQL reached
// through PgBouncer in session mode (scripts/postgres-env.sh starts one in
// front of the test server): the pooler docs/postgres.md suggests for hubs
// with many logins must change nothing. Each script's database is created
// directly, then every ltigrade process connects through the pooler.
func TestScriptsPgBouncer(t *testing.T) {
	admin, why := storetest.AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	bouncer, why := storetest.BouncerDSN()
	if bouncer == "" {
		t.Skip(why)
	}
	b, err := url.Parse(bouncer)
	if err != nil {
		t.Fatal(err)
	}
	runScripts(t, admin, b.Host)
}

// runScripts runs the testscripts on SQLite, or with pgAdmin on a
// PostgreSQL database of their own, reached at via (host:port) when set.
func runScripts(t *testing.T, pgAdmin, via string) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("..", "..", "testdata", "script"),
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "postgres":
				return pgAdmin != "", nil
			case "sandbox":
				return sandboxCondition()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			sim := lmssim.New(map[string]string{simKey: simSecret})
			base, err := sim.Start("127.0.0.1:0")
			if err != nil {
				return err
			}
			sims.Store(env.WorkDir, sim)
			env.Defer(func() { sim.Close(); sims.Delete(env.WorkDir) })
			secretFile := filepath.Join(env.WorkDir, "course.secret")
			if err := os.WriteFile(secretFile, []byte(simSecret+"\n"), 0o600); err != nil {
				return err
			}
			// $DATABASE is the database for config files a script writes
			// itself (through envsubst).
			db := fmt.Sprintf("database = %q\n", filepath.Join(env.WorkDir, "ltigrade.db"))
			env.Setenv("DATABASE", filepath.Join(env.WorkDir, "ltigrade.db"))
			if pgAdmin != "" {
				dsn, drop, err := storetest.NewDatabase(context.Background(), pgAdmin)
				if err != nil {
					return err
				}
				env.Defer(func() { drop() })
				u, err := url.Parse(dsn)
				if err != nil {
					return err
				}
				if via != "" {
					u.Host = via
				}
				pw, _ := u.User.Password()
				u.User = url.User(u.User.Username())
				pwFile := filepath.Join(env.WorkDir, "db.pass")
				if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
					return err
				}
				// The spool has no default beside a server database.
				db = fmt.Sprintf("database = %q\ndatabase_password_file = %q\n[hub]\nspool_dir = %q\n",
					u.String(), pwFile, filepath.Join(env.WorkDir, "spool"))
				// Config files a script writes name the database without a
				// password file: the driver takes $PGPASSWORD.
				env.Setenv("DATABASE", u.String())
				env.Setenv("PGPASSWORD", pw)
			}
			cfg := fmt.Sprintf("%s\n[paths]\nhome = %q\n[[lti11.consumers]]\nkey = %q\nsecret_file = %q\n[passback]\ntimeout = \"3s\"\n",
				db, filepath.Join(env.WorkDir, "home", "jupyter-{username}"), simKey, secretFile)
			cfgFile := filepath.Join(env.WorkDir, "config.toml")
			if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
				return err
			}
			env.Setenv("LTIGRADE_CONFIG", cfgFile)
			env.Setenv("LMS_URL", base)
			env.Setenv("LMS_SECRET", simSecret)
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".local", "share"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lms":         cmdLMS,
			"envsubst":    cmdEnvsubst,
			"chmod":       cmdChmod,
			"pylms":       cmdPyLMS,
			"agsplatform": cmdAGSPlatform,
			"fakehub":     cmdFakeHub,
			"freeport":    cmdFreePort,
			"waithttp":    cmdWaitHTTP,
			"httpget":     cmdHTTPGet,
			"sandboxuser": cmdSandboxUser,
			"tlslms":      cmdTLSLMS,
		},
	})
}

// cmdLMS drives the script's LMS simulator:
//
//	lms grade SOURCEDID        print the stored score (fails if none)
//	lms nograde SOURCEDID      fail if a score is stored
//	lms fault STATUS [N] [RETRY-AFTER] [BODY...]   next N requests answer STATUS
//	lms failure DESCRIPTION    next request gets an imsx failure (HTTP 200)
//	lms requests               print the number of outcome requests received
//	lms roster ID...           only these sourcedIds are valid
func cmdLMS(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: lms grade|nograde|fault|failure|requests|roster ...")
	}
	sim := simFor(ts)
	switch args[0] {
	case "grade", "nograde":
		g, ok := sim.Grade(args[1])
		if args[0] == "nograde" {
			if ok != neg {
				ts.Fatalf("LMS holds a grade for %s: %s", args[1], g.Score)
			}
			return
		}
		if !ok {
			if !neg {
				ts.Fatalf("LMS holds no grade for %s", args[1])
			}
			return
		}
		fmt.Fprintf(ts.Stdout(), "%s\n", g.Score)
		if g.ResultDataText != "" {
			fmt.Fprintf(ts.Stdout(), "text: %s\n", g.ResultDataText)
		}
	case "fault":
		status, err := strconv.Atoi(args[1])
		if err != nil {
			ts.Fatalf("bad status %q", args[1])
		}
		f := lmssim.Fault{Status: status, Repeat: 1}
		if len(args) > 2 {
			f.Repeat, _ = strconv.Atoi(args[2])
		}
		if len(args) > 3 {
			f.RetryAfter = args[3]
		}
		if len(args) > 4 {
			f.Body = strings.Join(args[4:], " ")
		}
		sim.Inject(f)
	case "drop":
		sim.Inject(lmssim.Fault{Drop: true, Repeat: 1})
	case "delay":
		d, err := time.ParseDuration(args[1])
		if err != nil {
			ts.Fatalf("bad delay: %v", err)
		}
		sim.Inject(lmssim.Fault{Delay: d, Repeat: 1})
	case "failure":
		sim.Inject(lmssim.Fault{Status: 200, Body: failureXML(strings.Join(args[1:], " "))})
	case "waitrequests":
		n, _ := strconv.Atoi(args[1])
		deadline := time.Now().Add(20 * time.Second)
		for sim.Requests() < n {
			if time.Now().After(deadline) {
				ts.Fatalf("LMS got %d requests, want %d", sim.Requests(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	case "requests":
		fmt.Fprintf(ts.Stdout(), "%d\n", sim.Requests())
	case "roster":
		sim.SetRoster(args[1:]...)
	default:
		ts.Fatalf("unknown lms command %q", args[0])
	}
}

func failureXML(desc string) string {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeResponse xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier>1</imsx_messageIdentifier><imsx_statusInfo><imsx_codeMajor>failure</imsx_codeMajor><imsx_severity>status</imsx_severity><imsx_description>`)
	b.WriteString(desc)
	b.WriteString(`</imsx_description><imsx_operationRefIdentifier>replaceResult</imsx_operationRefIdentifier></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><replaceResultResponse/></imsx_POXBody></imsx_POXEnvelopeResponse>`)
	return b.String()
}

// cmdEnvsubst replaces $LMS_URL, $LMS_SECRET and $WORK inside files, so
// launch JSON can point at this script's LMS simulator. Other $ signs stay.
func cmdEnvsubst(ts *testscript.TestScript, neg bool, args []string) {
	for _, name := range args {
		p := ts.MkAbs(name)
		data, err := os.ReadFile(p)
		ts.Check(err)
		out := string(data)
		for _, v := range []string{"PYLMS_URL", "AGS_URL", "TLSLMS_URL", "LMS_URL", "LMS_SECRET", "DATABASE", "WORK"} {
			out = strings.ReplaceAll(out, "$"+v, ts.Getenv(v))
		}
		ts.Check(os.WriteFile(p, []byte(out), 0o644))
	}
}

// cmdChmod is chmod MODE FILE... (octal), for the secret-file mode tests.
func cmdChmod(ts *testscript.TestScript, neg bool, args []string) {
	mode, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	for _, name := range args[1:] {
		ts.Check(os.Chmod(ts.MkAbs(name), os.FileMode(mode)))
	}
}
