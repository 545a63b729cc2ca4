package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"unicode"
)

const redacted = "[redacted]"

// MaxSecretFileSize bounds secret files: a shared secret is a few dozen
// bytes, so anything larger is a wrong path (a log, a database), and reading
// it whole would be a waste at best.
const MaxSecretFileSize = 64 << 10

// Secret is a consumer's shared secret. Every way of printing or encoding it
// gives "[redacted]", so it can travel through structs, logs and JSON safely;
// Reveal is the only way to the value, which makes each use easy to audit.
type Secret struct {
	v string
}

// Reveal returns the secret's value, for the signer and nothing else.
func (s Secret) Reveal() string { return s.v }

func (Secret) String() string   { return redacted }
func (Secret) GoString() string { return redacted }

// Format makes every fmt verb, including %x and %q, print "[redacted]".
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }

// secretSource is where one consumer's secret comes from: exactly one of
// inline, file or env is set.
type secretSource struct {
	consumer string
	inline   Secret
	file     string
	env      string
}

// SecretSource describes where the consumer's secret comes from without
// revealing it: "secret (inline)", "secret_file PATH" or "secret_env NAME".
func (k Consumer) SecretSource() string {
	switch {
	case k.src == nil:
		return "none"
	case k.src.file != "":
		return "secret_file " + k.src.file
	case k.src.env != "":
		return "secret_env " + k.src.env
	default:
		return "secret (inline)"
	}
}

// ErrUnknownConsumer is wrapped by ConsumerSecret's error when the
// configuration names no consumer with the key: nothing can sign for it
// until someone adds one, so a score for it is refused, not journaled.
var ErrUnknownConsumer = errors.New("unknown LTI 1.1 consumer")

// SecretUnavailableError says a configured consumer's secret (or a
// platform's private key) cannot be loaded right now: a file with a loose
// mode, missing or unreadable, an unset variable. The fix is local and the
// LMS is not involved, so a score can be journaled and sent once it is
// fixed. Neither the message nor the hint ever holds the secret.
type SecretUnavailableError struct {
	// Hint says how to fix it ("chmod 600 /etc/ltigrade/k.secret"); may be empty.
	Hint string
	// Err is the error itself, which names the file or variable.
	Err error
}

func (e *SecretUnavailableError) Error() string { return e.Err.Error() }
func (e *SecretUnavailableError) Unwrap() error { return e.Err }

// unavailable is a configuration error (wrapping ErrConfig, as before) that
// is also a *SecretUnavailableError.
func unavailable(hint, format string, args ...any) error {
	return &SecretUnavailableError{Hint: hint, Err: errorf(format, args...)}
}

// ConsumerSecret returns the secret of the LTI 1.1 consumer with this key.
// Files and environment variables are read on every call, so a rotated secret
// is picked up without restarting anything. A key the config does not know
// gives an error wrapping ErrUnknownConsumer; a known one whose secret cannot
// be read now gives a *SecretUnavailableError.
func (c *Config) ConsumerSecret(key string) (Secret, error) {
	for _, k := range c.LTI11.Consumers {
		if k.Key == key && k.src != nil {
			return k.src.load(c.getenv, c.Source)
		}
	}
	return Secret{}, &UnknownConsumerError{Key: key, Source: c.Source}
}

// UnknownConsumerError is a consumer key the config has no
// [[lti11.consumers]] entry for.
type UnknownConsumerError struct {
	Key    string
	Source string // the config file loaded, "" if none
}

func (e *UnknownConsumerError) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("config: no LTI 1.1 consumer with key %q: no config file was loaded; name one with --config or $%s", e.Key, EnvConfig)
	}
	return fmt.Sprintf("config: no LTI 1.1 consumer with key %q in %s", e.Key, e.Source)
}

// Unwrap makes it a config error (exit 2) and ErrUnknownConsumer.
func (e *UnknownConsumerError) Unwrap() []error { return []error{ErrConfig, ErrUnknownConsumer} }

// Hint is the fix the CLI suggests.
func (e *UnknownConsumerError) Hint() string {
	if e.Source == "" {
		return "add the consumer to [[lti11.consumers]] in a config file"
	}
	return "add the consumer to [[lti11.consumers]] in " + e.Source
}

// SecretModeError is a secret file that group or others may read or write.
type SecretModeError struct {
	Consumer string
	Path     string
	Mode     fs.FileMode // permission bits
}

func (e *SecretModeError) Error() string {
	return fmt.Sprintf("config: consumer %q: secret file %s has mode %04o; it must not be readable or writable by group or others (chmod 600 %s)",
		e.Consumer, e.Path, e.Mode, e.Path)
}

func (e *SecretModeError) Unwrap() error { return ErrConfig }

// Hint is the fix the CLI suggests.
func (e *SecretModeError) Hint() string { return "chmod 600 " + e.Path }

func (s *secretSource) load(getenv func(string) string, source string) (Secret, error) {
	switch {
	case s.file != "":
		return readSecretFile(s.consumer, s.file, source)
	case s.env != "":
		if getenv == nil {
			getenv = os.Getenv
		}
		// Only the variable's name may appear in errors, never its value.
		v := getenv(s.env)
		if v == "" {
			return Secret{}, unavailable("set "+s.env+" in the environment ltigrade (and the cron job running ltigrade sync) runs with",
				"consumer %q: environment variable %s (secret_env) is unset or empty", s.consumer, s.env)
		}
		return Secret{v: v}, nil
	default:
		return s.inline, nil
	}
}

// readSecretFile reads a secret file, refusing files that others can read or
// write: a secret exposed to every local user (students included, on a hub)
// lets anyone forge grades, so ltigrade will not use it until it is fixed.
// source is the config file, for the hint.
func readSecretFile(consumer, name, source string) (Secret, error) {
	onlySecret := "put the consumer's secret (only it) in " + name
	// O_NONBLOCK keeps a FIFO or device from blocking the open; the checks
	// below then refuse it. Checking the opened file, not the path, leaves no
	// gap between the check and the read.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below
		}
		hint := ""
		switch {
		case errors.Is(err, fs.ErrNotExist):
			hint = "create " + name + " holding only the secret (mode 600), or fix secret_file in " + dash(source)
		case errors.Is(err, fs.ErrPermission):
			hint = "make " + name + " readable by the user ltigrade runs as (its owner, mode 600)"
		}
		return Secret{}, unavailable(hint, "consumer %q: cannot open secret file %s: %w", consumer, name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Secret{}, unavailable("", "consumer %q: %w", consumer, err)
	}
	switch mode := fi.Mode(); {
	case !mode.IsRegular():
		return Secret{}, unavailable("point secret_file at a regular file holding only the secret",
			"consumer %q: secret file %s is not a regular file (%s)", consumer, name, mode.Type())
	case mode.Perm()&0o077 != 0:
		return Secret{}, &SecretUnavailableError{Hint: "chmod 600 " + name, Err: &SecretModeError{Consumer: consumer, Path: name, Mode: mode.Perm()}}
	case fi.Size() > MaxSecretFileSize:
		return Secret{}, unavailable(onlySecret, "consumer %q: secret file %s is larger than %d KiB; it must hold only the secret", consumer, name, MaxSecretFileSize>>10)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSecretFileSize+1))
	if err != nil {
		return Secret{}, unavailable("", "consumer %q: reading secret file %s: %w", consumer, name, err)
	}
	if len(data) > MaxSecretFileSize { // it grew after the Stat
		return Secret{}, unavailable(onlySecret, "consumer %q: secret file %s is larger than %d KiB; it must hold only the secret", consumer, name, MaxSecretFileSize>>10)
	}
	// Editors and `echo` add a trailing newline that is never part of the
	// secret; leading space is kept, as it could be.
	v := strings.TrimRightFunc(string(data), unicode.IsSpace)
	if v == "" {
		return Secret{}, unavailable(onlySecret, "consumer %q: secret file %s is empty", consumer, name)
	}
	return Secret{v: v}, nil
}

// HubAPIToken is the grading service's own hub API token:
// $JUPYTERHUB_API_TOKEN (a managed service gets it from the hub), else the
// file service.hub_api_token_file (mode 0600, like secret files). It is a
// Secret: it signs the service's OAuth code exchange and reads users'
// groups, and must never be printed.
func (c *Config) HubAPIToken() (Secret, error) {
	getenv := c.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := strings.TrimSpace(getenv("JUPYTERHUB_API_TOKEN")); v != "" {
		return Secret{v: v}, nil
	}
	if c.Service.HubAPITokenFile == "" {
		return Secret{}, errorf("no hub API token: set $JUPYTERHUB_API_TOKEN or service.hub_api_token_file")
	}
	return readSecretFile("service", c.Service.HubAPITokenFile, c.Source)
}

// MetricsToken is the bearer token that may read the service's metrics,
// from service.metrics_token_file (refused unless mode 0600 or 0400, like
// secret files); ok is false when none is configured.
func (c *Config) MetricsToken() (tok Secret, ok bool, err error) {
	if c.Service.MetricsTokenFile == "" {
		return Secret{}, false, nil
	}
	tok, err = readSecretFile("service.metrics_token_file", c.Service.MetricsTokenFile, c.Source)
	return tok, err == nil, err
}
