package config

import (
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

// checkDatabase refuses a database value ltigrade cannot open as SQLite.
// Nothing but the redacted value may appear in its errors.
func checkDatabase(v value[string]) error {
	sc := dsnScheme(v.v)
	if sc == "" {
		return nil
	}
	shown, where := RedactDSN(v.v), v.where()
	const hint = "set database (in the config file, $" + EnvDatabase + " or --db) to the path of a SQLite file, such as " + SystemDatabase
	switch sc {
	case "postgres", "postgresql":
		return hinted(hint, "database %q (from %s): PostgreSQL is not supported yet; ltigrade stores its data in a SQLite file", shown, where)
	case "sqlite", "sqlite3", "file":
		return hinted(hint, "database %q (from %s) is a URI: give the path of the SQLite file without the %s: prefix", shown, where, sc)
	}
	return hinted(hint, "database %q (from %s) has the scheme %q, which ltigrade does not support: it stores its data in a SQLite file", shown, where, sc)
}
