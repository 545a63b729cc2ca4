package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ltigrade/ltigrade/internal/doctor"
)

func TestChecklistOutput(t *testing.T) {
	rep := doctor.Report{Checks: []doctor.Check{
		{Name: "config", OK: true, Status: doctor.StatusOK, Detail: "/etc/ltigrade/config.toml"},
		// A consumer key and an LMS answer are untrusted: no escapes, one line.
		{Name: "consumer_secret", Subject: "key\x1b[2J", OK: false, Status: doctor.StatusFail,
			Detail: "mode 0644\nFAKE\tline", Hint: "chmod 600 /etc/ltigrade/k.secret"},
		{Name: "spool_failed", OK: true, Status: doctor.StatusWarn, Detail: "2 launches refused", Hint: "read them"},
		{Name: "hub_hook", OK: true, Status: doctor.StatusSkip, Detail: "no hub here"},
	}}
	var out, errb bytes.Buffer
	app := &App{Out: &out, Err: &errb, OutIsTTY: true}
	if err := printChecklist(app, rep); err != nil {
		t.Fatal(err)
	}
	tty := out.String()
	for _, want := range []string{
		"✓ config: /etc/ltigrade/config.toml\n",
		"✗ consumer_secret key\\x1b[2J: mode 0644 FAKE line\n    fix: chmod 600 /etc/ltigrade/k.secret\n",
		"! spool_failed: 2 launches refused\n    fix: read them\n",
		"- hub_hook: no hub here\n",
	} {
		if !strings.Contains(tty, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, tty)
		}
	}
	if strings.Contains(tty, "\x1b") {
		t.Error("an escape reached the terminal")
	}
	if got := errb.String(); got != "ltigrade: doctor: 1 of 4 checks failed, 1 warning\n" {
		t.Errorf("stderr %q", got)
	}

	out.Reset()
	app.OutIsTTY = false
	if err := printChecklist(app, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"ok\tconfig\t\t/etc/ltigrade/config.toml\t",
		"FAIL\tconsumer_secret\tkey\\x1b[2J\tmode 0644 FAKE line\tchmod 600 /etc/ltigrade/k.secret",
		"WARN\tspool_failed\t\t2 launches refused\tread them",
		"skip\thub_hook\t\tno hub here\t",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("pipe output:\n%q\nwant\n%q", lines, want)
	}
}
