package config

import (
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// dsnSchemes are schemes recognised even without "//" after the colon:
// database drivers accept "postgres:..." and SQLite "file:...", so such a
// value is never meant as a file name in the working directory.
var dsnSchemes = []string{"postgres", "postgresql", "mysql", "mariadb", "sqlite", "sqlite3", "file"}

// pgKeywords are libpq's keyword/value connection string keys.
var pgKeywords = []string{"host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "service"}

// dsnScheme returns the lower-case scheme of a database value that is a URL
// or a connection string, or "" for a file path. A colon inside a path
// ("./data/a:b.db") does not make a scheme: the part before it must be a
// URL scheme followed by "://" (two letters at least, so "c://" is a path),
// or a known database scheme.
func dsnScheme(s string) string {
	if sc := urlScheme(s); sc != "" {
		return sc
	}
	if isKeywordDSN(s) {
		return "postgres"
	}
	return ""
}

// urlScheme is the scheme of a value written as a URL, "" otherwise.
func urlScheme(s string) string {
	if i := strings.Index(s, "://"); i >= 2 && isScheme(s[:i]) {
		return strings.ToLower(s[:i])
	}
	if i := strings.IndexByte(s, ':'); i > 0 && isScheme(s[:i]) {
		if sc := strings.ToLower(s[:i]); slices.Contains(dsnSchemes, sc) {
			return sc
		}
	}
	return ""
}

// isScheme follows RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// isKeywordDSN recognises "host=db user=x password=y": every word a
// key=value pair, and one of them a libpq key.
func isKeywordDSN(s string) bool {
	words := strings.Fields(s)
	known := false
	for _, w := range words {
		k, _, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return false
		}
		known = known || slices.Contains(pgKeywords, strings.ToLower(k))
	}
	return known
}

// RedactDSN hides the password of a database URL or connection string (its
// userinfo password and password-like parameters); a file path comes back
// unchanged. It errs towards hiding: everything up to the last "@" after the
// scheme is taken as userinfo, so a password holding "/" or "@" is hidden
// too.
func RedactDSN(s string) string {
	switch {
	case urlScheme(s) != "":
	case isKeywordDSN(s):
		words := strings.Fields(s)
		for i, w := range words {
			if k, _, _ := strings.Cut(w, "="); sensitiveParam(k) {
				words[i] = k + "=xxxxx"
			}
		}
		return strings.Join(words, " ")
	default:
		return s
	}
	colon := strings.IndexByte(s, ':')
	prefix, rest := s[:colon+1], s[colon+1:]
	if strings.HasPrefix(rest, "//") {
		prefix, rest = prefix+"//", rest[2:]
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, hasPw := strings.Cut(rest[:at], ":")
		if hasPw {
			user += ":xxxxx"
		}
		rest = user + rest[at:]
	}
	if base, query, ok := strings.Cut(rest, "?"); ok {
		params := strings.Split(query, "&")
		for i, p := range params {
			if k, _, _ := strings.Cut(p, "="); sensitiveParam(k) {
				params[i] = k + "=xxxxx"
			}
		}
		rest = base + "?" + strings.Join(params, "&")
	}
	return prefix + rest
}

func sensitiveParam(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"pass", "pwd", "secret", "token", "key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// checkDatabase refuses a database value ltigrade cannot open: anything
// that is a URL or connection string but not a postgres:// or
// postgresql:// URL. Nothing but the redacted value may appear in its
// errors.
func checkDatabase(v value[string]) error {
	sc := dsnScheme(v.v)
	if sc == "" {
		return nil
	}
	shown, where := RedactDSN(v.v), v.where()
	const hint = "set database (in the config file, $" + EnvDatabase + " or --db) to the path of a SQLite file, such as " + SystemDatabase +
		", or to a PostgreSQL URL, postgres://USER@HOST/DBNAME"
	switch sc {
	case "postgres", "postgresql":
		if IsPostgresURL(v.v) {
			if _, _, err := splitPassword(v.v); err != nil {
				return hinted("write it as postgres://USER@HOST:PORT/DBNAME, with the password in database_password_file or $PGPASSWORD (a password in the URL must be percent-encoded)",
					"database %q (from %s) is not a valid URL", shown, where)
			}
			return nil
		}
		return hinted("write the database as postgres://USER@HOST:PORT/DBNAME?sslmode=verify-full (the password in database_password_file or $PGPASSWORD)",
			"database %q (from %s) is a PostgreSQL connection string: write it as a postgres:// URL", shown, where)
	case "sqlite", "sqlite3", "file":
		return hinted(hint, "database %q (from %s) is a URI: give the path of the SQLite file without the %s: prefix", shown, where, sc)
	}
	return hinted(hint, "database %q (from %s) has the scheme %q, which ltigrade does not support: it stores its data in a SQLite file or a PostgreSQL database", shown, where, sc)
}

// IsPostgresURL reports whether a database value is a postgres:// or
// postgresql:// URL (any case), the one form that names a PostgreSQL
// database; package store decides the same way.
func IsPostgresURL(s string) bool {
	i := strings.Index(s, "://")
	if i < 0 {
		return false
	}
	sc := strings.ToLower(s[:i])
	return sc == "postgres" || sc == "postgresql"
}

// splitPassword takes the password out of a postgres:// URL (its userinfo
// password or password parameter): Config keeps the URL without it, so that
// no string field of a Config holds it, and hands it out by
// DatabasePassword only.
func splitPassword(s string) (string, *string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", nil, err
	}
	var pw *string
	if p, ok := u.User.Password(); ok {
		pw = &p
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if q.Has("password") {
		p := q.Get("password")
		if pw == nil {
			pw = &p
		}
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String(), pw, nil
}

// resolveDatabasePassword takes database_password_file: the password of a
// PostgreSQL URL that names none (the password is then in one place that
// config show never prints, instead of in a URL pasted into logs).
// Without it, the driver reads $PGPASSWORD or ~/.pgpass as libpq does.
func (c *Config) resolveDatabasePassword(p *string, overridden bool, src string) error {
	if p == nil {
		// Not listed when unset: most stores are SQLite files.
		return nil
	}
	f := *p
	switch {
	case f == "" || strings.IndexByte(f, 0) >= 0:
		return errorf("%s: database_password_file %q is not a file name", src, f)
	case !IsPostgresURL(c.Database) && overridden:
		// --db or $LTIGRADE_DB chose a file database over the file's:
		// the password file is not needed.
		return nil
	case !IsPostgresURL(c.Database):
		return hinted("remove database_password_file, or set database to a postgres:// URL",
			"%s: database_password_file is only for a PostgreSQL database; the database is the SQLite file %s", src, c.Database)
	case c.dbURLPassword != nil:
		return hinted("remove the password from the database URL (keep it in the file) or remove database_password_file",
			"%s: database_password_file is set but the database URL has a password too; set it in one place", src)
	}
	if !filepath.IsAbs(f) {
		f = filepath.Join(filepath.Dir(src), f)
	}
	c.DatabasePasswordFile = f
	c.record("database_password_file", f, OriginFile, src)
	return nil
}

// DatabasePassword is the PostgreSQL password: the one the database URL
// had, else database_password_file's ("" when neither is set; the driver
// then tries $PGPASSWORD and ~/.pgpass). The file is read on every call,
// like a consumer's secret_file, and refused when group or others may read
// or write it.
func (c *Config) DatabasePassword() (string, error) {
	if c.dbURLPassword != nil {
		return *c.dbURLPassword, nil
	}
	if c.DatabasePasswordFile == "" {
		return "", nil
	}
	s, err := readSecretFile("database", c.DatabasePasswordFile, c.Source)
	if err != nil {
		var me *SecretModeError
		if errors.As(err, &me) {
			return "", hinted("chmod 600 "+me.Path, "database_password_file %s has mode %04o; it must not be readable or writable by group or others (chmod 600 %s)",
				me.Path, me.Mode, me.Path)
		}
		return "", err
	}
	return s.Reveal(), nil
}
