// Package doctor checks a whole ltigrade set-up and says what to fix: the
// config and every file it names, the database, the hook's spool, the
// JupyterHub hook, the sync timer and, on request, the LMS hosts grades go
// to. Each check is a small function returning a Check; Run puts them in a
// Report in a fixed order. Nothing here prints, and no check ever puts a
// secret in a Check: details come from error messages the config, keys and
// store packages already keep free of secrets, and from file names.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Status is a check's outcome.
type Status string

const (
	StatusOK   Status = "ok"   // nothing to do
	StatusWarn Status = "warn" // works, but someone should look (refused launches kept in failed/)
	StatusFail Status = "fail" // broken: grades are or will be lost or late until it is fixed
	StatusSkip Status = "skip" // not applicable here, or it needs a check that failed
)

// Check is one line of the checklist. Name is stable (docs/doctor.md lists
// them); Subject says which one of several (a consumer key, a host).
type Check struct {
	Name    string `json:"name"`
	Subject string `json:"subject,omitempty"`
	// OK is false only for StatusFail: a warning or a skipped check does
	// not make doctor fail.
	OK     bool   `json:"ok"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"`
}

// Report is doctor's result, its --json shape.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// Failed counts the failed checks, and the warnings.
func (r Report) Failed() (failed, warned int) {
	for _, c := range r.Checks {
		switch c.Status {
		case StatusFail:
			failed++
		case StatusWarn:
			warned++
		}
	}
	return failed, warned
}

// Setup is what doctor checks and how; the CLI fills it from the flags and
// the process, tests from a temporary directory.
type Setup struct {
	// Config is the loaded configuration, or nil with ConfigErr saying why
	// it did not load.
	Config    *config.Config
	ConfigErr error
	// Binary is this ltigrade's absolute path (symlinks resolved) and
	// Version its version: the hook must run this one.
	Binary  string
	Version string
	// HubConfigDir is where the hook is installed; HubConfigDirGiven says a
	// flag named it (a missing default directory means no hub here).
	HubConfigDir      string
	HubConfigDirGiven bool
	Timer             Timer
	// Network enables the LMS host checks, with Client (nil: system roots,
	// $HTTPS_PROXY) and at most NetworkTimeout per host.
	Network        bool
	Client         *http.Client
	NetworkTimeout time.Duration
	Now            func() time.Time
	// Skip names checks that do not apply to this set-up (a Kubernetes pod
	// has no sync timer and no hook of its own): they are reported as
	// skipped and cannot fail.
	Skip []string
}

// Names are the checks Run may report, for --skip.
var Names = []string{"config", "consumer_secret", "platform_key", "database_password", "hub_api_token",
	"database", "database_schema", "database_writable", "spool", "spool_failed", "hub_hook", "sync_timer",
	"outcome_host", "token_endpoint"}

// Run performs every check and returns the checklist.
func Run(ctx context.Context, s Setup) Report {
	if s.Now == nil {
		s.Now = time.Now
	}
	var checks []Check
	checks = append(checks, CheckConfig(s.Config, s.ConfigErr))
	var st store.Store
	if s.Config != nil {
		checks = append(checks, CheckSecrets(s.Config)...)
		var dbChecks []Check
		dbChecks, st = CheckDatabase(ctx, s.Config)
		if st != nil {
			defer st.Close()
		}
		checks = append(checks, dbChecks...)
		checks = append(checks, CheckSpool(s.Config.Hub.SpoolDir, s.Now())...)
		checks = append(checks, CheckHook(s.HubConfigDir, s.HubConfigDirGiven, s.Config, s.Binary, s.Version))
	} else {
		for _, n := range []string{"database", "spool", "hub_hook"} {
			checks = append(checks, skipped(n, "needs a config that loads"))
		}
	}
	checks = append(checks, CheckTimer(ctx, s.Timer))
	if s.Network {
		if s.Config == nil {
			checks = append(checks, skipped("outcome_host", "needs a config that loads"), skipped("token_endpoint", "needs a config that loads"))
		} else {
			checks = append(checks, CheckNetwork(ctx, s, st)...)
		}
	}
	for i, c := range checks {
		if slices.Contains(s.Skip, c.Name) {
			checks[i] = Check{Name: c.Name, Subject: c.Subject, OK: true, Status: StatusSkip, Detail: "skipped (--skip " + c.Name + ")"}
		}
	}
	r := Report{OK: true, Checks: checks}
	for _, c := range checks {
		if c.Status == StatusFail {
			r.OK = false
		}
	}
	return r
}

func ok(name, subject, detail string) Check {
	return Check{Name: name, Subject: subject, OK: true, Status: StatusOK, Detail: detail}
}

func fail(name, subject, detail, hint string) Check {
	return Check{Name: name, Subject: subject, OK: false, Status: StatusFail, Detail: detail, Hint: hint}
}

func warn(name, subject, detail, hint string) Check {
	return Check{Name: name, Subject: subject, OK: true, Status: StatusWarn, Detail: detail, Hint: hint}
}

func skipped(name, detail string) Check {
	return Check{Name: name, OK: true, Status: StatusSkip, Detail: detail}
}

// hintOf is the fix an error knows (config, keys and spool errors name
// their own remedy), else fallback.
func hintOf(err error, fallback string) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		return h.Hint()
	}
	var su *config.SecretUnavailableError
	if errors.As(err, &su) && su.Hint != "" {
		return su.Hint
	}
	return fallback
}

// age is a duration for people, to the second.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Truncate(time.Second).String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
