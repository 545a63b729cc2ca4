package doctor

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ltigrade/ltigrade/internal/config"
)

// SyncUnit is the systemd timer the deb and rpm packages install.
const SyncUnit = "ltigrade-sync.timer"

// Timer says where check "sync_timer" looks for what runs `ltigrade sync`:
// the systemd timer when systemd runs, else cron. The CLI fills in the real
// system; tests point it at files and fake commands.
type Timer struct {
	// SystemdDir exists when systemd is the init system (/run/systemd/system).
	SystemdDir string
	// Systemctl runs systemctl with args and returns its stdout.
	Systemctl func(ctx context.Context, args ...string) (string, error)
	// CronFiles are globs of crontab files (/etc/crontab, /etc/cron.d/*).
	CronFiles []string
	// Crontab returns this user's crontab (`crontab -l`); nil to skip.
	Crontab func(ctx context.Context) (string, error)
	// Example is a cron line for the hint, with this binary and config.
	Example string
}

// syncLine matches a crontab line that runs ltigrade's sync.
var syncLine = regexp.MustCompile(`ltigrade\S*\s(.*\s)?sync(\s|$)`)

// CheckTimer is check "sync_timer": something runs `ltigrade sync`, which
// sends the scores that could not be sent at once and ingests the spool.
// Without it a score that met a busy LMS stays queued for ever.
func CheckTimer(ctx context.Context, t Timer) Check {
	const name = "sync_timer"
	systemd := false
	state := ""
	if t.SystemdDir != "" && t.Systemctl != nil {
		if fi, err := os.Stat(t.SystemdDir); err == nil && fi.IsDir() {
			systemd = true
			out, _ := t.Systemctl(ctx, "is-enabled", SyncUnit)
			state = strings.TrimSpace(out)
			switch state {
			case "enabled", "enabled-runtime", "static", "alias", "indirect", "generated":
				active, _ := t.Systemctl(ctx, "is-active", SyncUnit)
				if a := strings.TrimSpace(active); a != "active" {
					return warn(name, "", "systemd: "+SyncUnit+" is "+state+" but "+orState(a, "not active")+": it starts at the next boot",
						"sudo systemctl start "+SyncUnit)
				}
				return ok(name, "", "systemd: "+SyncUnit+" is "+state+" and active")
			}
		}
	}
	if file, line := findCron(ctx, t); file != "" {
		return ok(name, "", "cron: "+file+": "+redactCronLine(line))
	}
	var looked []string
	looked = append(looked, t.CronFiles...)
	if t.Crontab != nil {
		looked = append(looked, "crontab -l")
	}
	if systemd {
		return fail(name, "", SyncUnit+" is "+orState(state, "not installed")+", and no cron entry runs `ltigrade sync` (looked in "+strings.Join(looked, ", ")+")",
			"sudo systemctl enable --now "+SyncUnit+" (the deb and rpm packages install it)")
	}
	hint := "add a cron entry, e.g. /etc/cron.d/ltigrade: " + t.Example
	return fail(name, "", "systemd is not running here, and no cron entry runs `ltigrade sync` (looked in "+strings.Join(looked, ", ")+")", hint)
}

func orState(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// redactCronLine hides what a crontab line may carry besides the command:
// a password in a database URL (LTIGRADE_DB=postgres://u:PW@..., --db
// URL) and variables named like secrets (PGPASSWORD=..., ..._TOKEN=...).
func redactCronLine(line string) string {
	words := strings.Fields(line)
	for i, w := range words {
		k, v, isAssign := strings.Cut(w, "=")
		switch {
		case isAssign && secretName(k):
			words[i] = k + "=xxxxx"
		case isAssign && strings.Contains(v, "://"):
			words[i] = k + "=" + config.RedactDSN(v)
		case strings.Contains(w, "://"):
			words[i] = config.RedactDSN(w)
		}
	}
	return strings.Join(words, " ")
}

func secretName(k string) bool {
	k = strings.ToUpper(k)
	return strings.Contains(k, "PASS") || strings.Contains(k, "SECRET") || strings.Contains(k, "TOKEN")
}

// findCron returns the first crontab file and line that runs ltigrade sync.
func findCron(ctx context.Context, t Timer) (file, line string) {
	scan := func(data []byte) string {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if syncLine.MatchString(l) {
				return l
			}
		}
		return ""
	}
	for _, g := range t.CronFiles {
		matches, _ := filepath.Glob(g)
		for _, f := range matches {
			fi, err := os.Stat(f)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if l := scan(data); l != "" {
				return f, l
			}
		}
	}
	if t.Crontab != nil {
		if out, err := t.Crontab(ctx); err == nil {
			if l := scan([]byte(out)); l != "" {
				return "crontab -l", l
			}
		}
	}
	return "", ""
}
