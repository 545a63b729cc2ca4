package sandbox

import (
	"bytes"
	"strings"
	"testing"
)

// These need no root: the checks Run makes before it builds anything.

func TestPrepareRefusesBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"root", Spec{User: "root", Argv: []string{"true"}}, "uid or gid 0"},
		{"no user", Spec{Argv: []string{"true"}}, "no user"},
		{"unknown user", Spec{User: "no-such-user-ltigrade", Argv: []string{"true"}}, "no-such-user-ltigrade"},
		{"no argv", Spec{User: "root"}, "empty argv"},
		{"dotdot", Spec{User: "root", Argv: []string{"true"}, Files: []File{{Name: "../x"}}}, "inside the working directory"},
		{"absolute", Spec{User: "root", Argv: []string{"true"}, Files: []File{{Name: "/etc/x"}}}, "relative path"},
		{"hidden dotdot", Spec{User: "root", Argv: []string{"true"}, Files: []File{{Name: "a/../../x"}}}, "inside the working directory"},
		{"collect outside", Spec{User: "root", Argv: []string{"true"}, Collect: []string{"../../etc/shadow"}}, "inside the working directory"},
		{"bad env", Spec{User: "root", Argv: []string{"true"}, Env: []string{"NOEQUALS"}}, "NAME=value"},
		{"service env", Spec{User: "root", Argv: []string{"true"}, Env: []string{"PATH=/bin", "LTIGRADE_CONFIG=/etc/ltigrade/config.toml"}}, "LTIGRADE_CONFIG"},
		{"read-only root", Spec{User: "root", Argv: []string{"true"}, ReadOnly: []string{"/"}}, "not /"},
		{"read-only relative", Spec{User: "root", Argv: []string{"true"}, ReadOnly: []string{"venv"}}, "absolute"},
		{"read-only unclean", Spec{User: "root", Argv: []string{"true"}, ReadOnly: []string{"/usr/../var/lib"}}, "clean"},
		{"read-only in tmp", Spec{User: "root", Argv: []string{"true"}, ReadOnly: []string{"/tmp/x"}}, "the sandbox's own"},
		{"read-only missing", Spec{User: "root", Argv: []string{"true"}, ReadOnly: []string{"/no/such/venv"}}, "no such file"},
		{"hub env", Spec{User: "root", Argv: []string{"true"}, Env: []string{"JUPYTERHUB_API_TOKEN=x"}}, "JUPYTERHUB_API_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The other cases name root too: their own fault must be reported
			// before the user is even looked up.
			_, err := prepare(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("prepare: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestTailKeepsTheLastBytes(t *testing.T) {
	var all bytes.Buffer
	tl := &tail{max: 10}
	for i := 0; i < 1000; i++ {
		chunk := []byte(strings.Repeat(string(rune('a'+i%26)), i%7+1))
		all.Write(chunk)
		tl.Write(chunk)
	}
	tl.Write([]byte(strings.Repeat("z", 25)))
	all.Write([]byte(strings.Repeat("z", 25)))
	tl.Write([]byte("end"))
	all.Write([]byte("end"))
	if got, want := string(tl.bytes()), all.String()[all.Len()-10:]; got != want {
		t.Errorf("tail %q, want %q", got, want)
	}
	if tl.total != int64(all.Len()) {
		t.Errorf("counted %d, want %d", tl.total, all.Len())
	}
}
