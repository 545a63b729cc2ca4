package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretValue is planted everywhere a secret can be; no output may contain it.
const secretValue = "s3cr3t-ZETA-9f8e7d6c"

// consumerWithFile loads a config whose consumer "k" reads name, and returns
// the secret lookup result.
func consumerWithFile(t *testing.T, name string) (Secret, error) {
	t.Helper()
	o := testOptions(fakeEnv{}, 0)
	c, err := loadString(t, fmt.Sprintf("[[lti11.consumers]]\nkey = \"k\"\nsecret_file = %q\n", name), o)
	if err != nil {
		t.Fatal(err)
	}
	return c.ConsumerSecret("k")
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", MaxSecretFileSize+1)
	tests := []struct {
		name    string
		path    string
		want    string // the secret, or
		wantErr string // the whole error message
	}{
		{"plain", writeFile(t, dir, "plain", secretValue, 0o600), secretValue, ""},
		{"trailing newline", writeFile(t, dir, "nl", " "+secretValue+" \r\n\n", 0o400), " " + secretValue, ""},
		{"max size", writeFile(t, dir, "max", big[1:], 0o600), big[1:], ""},
		{"world readable", writeFile(t, dir, "644", secretValue, 0o644), "",
			`config: consumer "k": secret file DIR/644 has mode 0644; it must not be readable or writable by group or others (chmod 600 DIR/644)`},
		{"group readable", writeFile(t, dir, "640", secretValue, 0o640), "",
			`config: consumer "k": secret file DIR/640 has mode 0640; it must not be readable or writable by group or others (chmod 600 DIR/640)`},
		{"group writable", writeFile(t, dir, "620", secretValue, 0o620), "",
			`config: consumer "k": secret file DIR/620 has mode 0620; it must not be readable or writable by group or others (chmod 600 DIR/620)`},
		{"too big", writeFile(t, dir, "big", secretValue+big, 0o600), "",
			`config: consumer "k": secret file DIR/big is larger than 64 KiB; it must hold only the secret`},
		{"empty", writeFile(t, dir, "empty", "", 0o600), "", `config: consumer "k": secret file DIR/empty is empty`},
		{"blank", writeFile(t, dir, "blank", " \n\t\n", 0o600), "", `config: consumer "k": secret file DIR/blank is empty`},
		{"directory", dir, "", `config: consumer "k": secret file DIR is not a regular file (d---------)`},
		{"missing", filepath.Join(dir, "missing"), "", `config: consumer "k": cannot open secret file DIR/missing: no such file or directory`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := consumerWithFile(t, tc.path)
			if tc.wantErr == "" {
				if err != nil || s.Reveal() != tc.want {
					t.Fatalf("got %d bytes, %v", len(s.Reveal()), err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if want := strings.ReplaceAll(tc.wantErr, "DIR", dir); err.Error() != want {
				t.Errorf("err = %q\nwant  %q", err, want)
			}
			checkErrorStyle(t, err)
		})
	}
}

func TestSecretFileSymlink(t *testing.T) {
	// Mounted secrets (Kubernetes, systemd credentials) are often symlinks;
	// the target's mode is what counts.
	dir := t.TempDir()
	target := writeFile(t, dir, "target", secretValue, 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if s, err := consumerWithFile(t, link); err != nil || s.Reveal() != secretValue {
		t.Errorf("symlink: %v", err)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := consumerWithFile(t, link); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("symlink to 0644 file: %v", err)
	}
}

func TestSecretFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secrets/k", secretValue+"\n", 0o600)
	o := testOptions(fakeEnv{}, 0)
	o.ConfigFlag = writeFile(t, dir, "config.toml", "[[lti11.consumers]]\nkey = \"k\"\nsecret_file = \"secrets/k\"\n", 0o644)
	c, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.ConsumerSecret("k"); err != nil || s.Reveal() != secretValue {
		t.Errorf("got %v", err)
	}
	// Rotation is picked up without reloading.
	writeFile(t, dir, "secrets/k", "rotated", 0o600)
	if s, _ := c.ConsumerSecret("k"); s.Reveal() != "rotated" {
		t.Error("rotated secret not read")
	}
}

func TestSecretEnv(t *testing.T) {
	env := fakeEnv{"LMS_SECRET": secretValue}
	c, err := loadString(t, "[[lti11.consumers]]\nkey = \"k\"\nsecret_env = \"LMS_SECRET\"\n[[lti11.consumers]]\nkey = \"u\"\nsecret_env = \"UNSET\"\n", testOptions(env, 0))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.ConsumerSecret("k"); err != nil || s.Reveal() != secretValue {
		t.Errorf("got %v", err)
	}
	_, err = c.ConsumerSecret("u")
	if err == nil || err.Error() != `config: consumer "u": environment variable UNSET (secret_env) is unset or empty` {
		t.Errorf("err = %v", err)
	}
	checkErrorStyle(t, err)
}

func TestSecretNeverPrinted(t *testing.T) {
	s := Secret{v: secretValue}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-10v"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, []Secret{s}), fmt.Sprintf(verb, struct{ S Secret }{s}))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())
	j, err := json.Marshal(map[string]any{"s": s, "p": &s})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	txt, _ := s.MarshalText()
	outs = append(outs, string(txt))
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "secret", s)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "secret", s)
	outs = append(outs, logs.String())
	for _, o := range outs {
		if strings.Contains(o, secretValue) {
			t.Errorf("secret printed: %q", o)
		}
		if !strings.Contains(o, "[redacted]") {
			t.Errorf("output %q lacks [redacted]", o)
		}
	}
	if s.Reveal() != secretValue {
		t.Error("Reveal lost the value")
	}
}

// TestNoSecretLeaks plants the secret in every place it may sit and triggers
// every error path near it; neither errors, warnings, Describe nor printed
// Configs may show it.
func TestNoSecretLeaks(t *testing.T) {
	dir := t.TempDir()
	loose := writeFile(t, dir, "loose", secretValue, 0o644)
	big := writeFile(t, dir, "big", secretValue+strings.Repeat("x", MaxSecretFileSize), 0o600)
	good := writeFile(t, dir, "good", secretValue, 0o600)
	env := fakeEnv{"LMS_SECRET": secretValue, EnvPassbackTimeout: "1s", "HOME": "/h"}
	inline := fmt.Sprintf("[[lti11.consumers]]\nkey = \"k\"\nsecret = %q\n", secretValue)

	var outputs []string
	collect := func(c *Config, err error) {
		if err != nil {
			outputs = append(outputs, err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err))
		}
		if c == nil {
			return
		}
		j, _ := json.Marshal(c)
		outputs = append(outputs, fmt.Sprintf("%v\n%+v\n%#v\n%s\n%v\n%v", c, c, *c, j, c.Describe(), c.Warnings))
		for _, k := range c.LTI11.Consumers {
			outputs = append(outputs, k.SecretSource(), fmt.Sprintf("%v %+v %#v", k, k, k))
			s, err := c.ConsumerSecret(k.Key)
			outputs = append(outputs, fmt.Sprintf("%v %+v %#v %s", s, s, s, s))
			if err != nil {
				outputs = append(outputs, err.Error())
			}
		}
		if _, err := c.ConsumerSecret("missing"); err != nil {
			outputs = append(outputs, err.Error())
		}
	}
	files := []struct {
		name, content string
		mode          os.FileMode
		wantErr       bool
	}{
		{"inline, world readable", inline, 0o644, true},
		{"inline ok", inline, 0o600, false},
		{"inline with bad duration", inline + "[passback]\ntimeout = \"x\"\n", 0o600, true},
		{"inline and file", inline + fmt.Sprintf("secret_file = %q\n", good), 0o600, true},
		{"inline and env", inline + "secret_env = \"LMS_SECRET\"\n", 0o600, true},
		{"unquoted", "[[lti11.consumers]]\nkey = \"k\"\nsecret = " + secretValue + "\n", 0o600, true},
		{"unquoted with spaces", "[[lti11.consumers]]\nkey = \"k\"\nsecret =   " + secretValue + "   # c\n", 0o600, true},
		{"unterminated", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"" + secretValue + "\n", 0o600, true},
		{"unterminated literal", "[[lti11.consumers]]\nkey = \"k\"\nsecret = '" + secretValue + "\n", 0o600, true},
		{"unterminated multiline", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"\"\"" + secretValue + "\n", 0o600, true},
		{"bad escape", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"" + secretValue + "\\q\"\n", 0o600, true},
		{"as number", "[[lti11.consumers]]\nkey = \"k\"\nsecret = 12" + secretValue + "\n", 0o600, true},
		{"inline table", "lti11 = { consumers = [ { key = \"k\", secret = " + secretValue + " } ] }\n", 0o600, true},
		{"misspelt key", "[[lti11.consumers]]\nkey = \"k\"\nsecrte = \"" + secretValue + "\"\n", 0o600, true},
		{"wrong table", "[lti11]\nsecret = \"" + secretValue + "\"\n", 0o600, true},
		{"duplicate consumer", inline + inline, 0o600, true},
		{"duplicate secret", inline + fmt.Sprintf("secret = %q\n", secretValue), 0o600, true},
		{"loose file", fmt.Sprintf("[[lti11.consumers]]\nkey = \"k\"\nsecret_file = %q\n", loose), 0o600, false},
		{"big file", fmt.Sprintf("[[lti11.consumers]]\nkey = \"k\"\nsecret_file = %q\n", big), 0o600, false},
		{"good file", fmt.Sprintf("[[lti11.consumers]]\nkey = \"k\"\nsecret_file = %q\n", good), 0o600, false},
		{"env", "[[lti11.consumers]]\nkey = \"k\"\nsecret_env = \"LMS_SECRET\"\n", 0o600, false},
		{"env unset", "[[lti11.consumers]]\nkey = \"k\"\nsecret_env = \"NOPE\"\n", 0o600, false},
	}
	for _, f := range files {
		o := testOptions(env, 0)
		o.ConfigFlag = writeFile(t, t.TempDir(), "c.toml", f.content, f.mode)
		c, err := Load(o)
		if (err != nil) != f.wantErr {
			t.Errorf("%s: err = %v, want error: %v", f.name, err, f.wantErr)
		}
		collect(c, err)
	}
	for _, out := range outputs {
		if strings.Contains(out, secretValue) || strings.Contains(out, "ZETA") {
			t.Errorf("secret leaked: %s", out)
		}
	}
}

func TestSyntaxErrorsKeptWhenSafe(t *testing.T) {
	// Redaction is limited to lines that may hold a secret; others keep the
	// parser's message, which usually says exactly what is wrong.
	_, err := loadString(t, "[paths]\nhome = /home/{username}\n", testOptions(fakeEnv{}, 0))
	if err == nil || !strings.Contains(err.Error(), `:2: invalid TOML: expected value but found '/' instead`) {
		t.Errorf("err = %v", err)
	}
	_, err = loadString(t, "[[lti11.consumers]]\nkey = \"k\"\nsecret = oops\n", testOptions(fakeEnv{}, 0))
	if err == nil || !strings.HasSuffix(err.Error(), ":3: invalid TOML: syntax error (details withheld because the line may hold a secret)") {
		t.Errorf("err = %v", err)
	}
}

// TestSecretErrorKinds: the CLI picks its hint by the kind of error, so a
// secret file's bad mode says chmod and only an unknown key says to add the
// consumer.
func TestSecretErrorKinds(t *testing.T) {
	dir := t.TempDir()
	loose := writeFile(t, dir, "loose", secretValue, 0o640)
	o := testOptions(fakeEnv{}, 0)
	c, err := loadString(t, fmt.Sprintf("[[lti11.consumers]]\nkey = \"file\"\nsecret_file = %q\n[[lti11.consumers]]\nkey = \"env\"\nsecret_env = \"UNSET\"\n", loose), o)
	if err != nil {
		t.Fatal(err)
	}
	hint := func(err error) string {
		var h interface{ Hint() string }
		if errors.As(err, &h) {
			return h.Hint()
		}
		return ""
	}

	_, err = c.ConsumerSecret("file")
	var me *SecretModeError
	if !errors.As(err, &me) || me.Path != loose || me.Mode != 0o640 || me.Consumer != "file" {
		t.Fatalf("bad mode: err = %#v, want a *SecretModeError", err)
	}
	checkErrorStyle(t, err)
	if h := hint(err); h != "chmod 600 "+loose {
		t.Errorf("bad mode hint = %q", h)
	}

	_, err = c.ConsumerSecret("nope")
	var ue *UnknownConsumerError
	if !errors.As(err, &ue) || ue.Key != "nope" {
		t.Fatalf("unknown key: err = %#v, want an *UnknownConsumerError", err)
	}
	checkErrorStyle(t, err)
	if h := hint(err); !strings.Contains(h, "add the consumer to [[lti11.consumers]] in "+c.Source) {
		t.Errorf("unknown key hint = %q", h)
	}

	_, err = c.ConsumerSecret("env")
	if errors.As(err, &me) || errors.As(err, &ue) || strings.Contains(hint(err), "[[lti11.consumers]]") {
		t.Errorf("unset secret_env: err = %v, hint %q", err, hint(err))
	}
	checkErrorStyle(t, err)
}

// TestSecretUnavailableVsUnknown checks the split the CLI relies on: a key
// the config does not name is ErrUnknownConsumer (nothing can ever sign for
// it), while a configured consumer whose secret cannot be loaded right now
// is a *SecretUnavailableError with the fix as its hint (the score can wait).
func TestSecretUnavailableVsUnknown(t *testing.T) {
	dir := t.TempDir()
	loose := writeFile(t, dir, "loose", secretValue, 0o644)
	empty := writeFile(t, dir, "empty", "", 0o600)
	missing := filepath.Join(dir, "missing")
	cfg := fmt.Sprintf(`[[lti11.consumers]]
key = "loose"
secret_file = %q
[[lti11.consumers]]
key = "missing"
secret_file = %q
[[lti11.consumers]]
key = "empty"
secret_file = %q
[[lti11.consumers]]
key = "env"
secret_env = "UNSET_SECRET"
`, loose, missing, empty)
	c, err := loadString(t, cfg, testOptions(fakeEnv{}, 0))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ key, hint string }{
		{"loose", "chmod 600 " + loose},
		{"missing", "create " + missing + " holding only the secret (mode 600), or fix secret_file in " + c.Source},
		{"empty", "put the consumer's secret (only it) in " + empty},
		{"env", "set UNSET_SECRET in the environment ltigrade (and the cron job running ltigrade sync) runs with"},
	}
	for _, tc := range tests {
		_, err := c.ConsumerSecret(tc.key)
		var su *SecretUnavailableError
		if !errors.As(err, &su) {
			t.Errorf("%s: err = %v, want a *SecretUnavailableError", tc.key, err)
			continue
		}
		if su.Hint != tc.hint {
			t.Errorf("%s: hint = %q, want %q", tc.key, su.Hint, tc.hint)
		}
		if errors.Is(err, ErrUnknownConsumer) {
			t.Errorf("%s: a configured consumer reported as unknown", tc.key)
		}
		checkErrorStyle(t, err)
		if strings.Contains(err.Error()+su.Hint, secretValue) {
			t.Errorf("%s: secret in error", tc.key)
		}
	}
	_, err = c.ConsumerSecret("nobody")
	var su *SecretUnavailableError
	if !errors.Is(err, ErrUnknownConsumer) || errors.As(err, &su) {
		t.Errorf("unknown key: err = %v, want ErrUnknownConsumer only", err)
	}
	checkErrorStyle(t, err)
	if _, err := (&Config{}).ConsumerSecret("nobody"); !errors.Is(err, ErrUnknownConsumer) {
		t.Errorf("no config file: err = %v, want ErrUnknownConsumer", err)
	}
}
