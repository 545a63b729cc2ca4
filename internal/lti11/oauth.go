package lti11

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// BodyHash returns base64(SHA1(body)), the oauth_body_hash value of the
// OAuth Request Body Hash extension that LTI 1.1 outcomes require.
func BodyHash(body []byte) string {
	sum := sha1.Sum(body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// percentEncode encodes s as RFC 5849 §3.6 demands: every byte except the
// RFC 3986 unreserved characters becomes %XX with upper-case hex. Go's
// url.QueryEscape differs (space as '+', '~' escaped in old versions), which
// would break signatures, so we do it by hand.
func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// baseStringURI builds the RFC 5849 §3.4.1.2 base string URI: lower-case
// scheme and host, the default port dropped, no query or fragment.
func baseStringURI(u *url.URL) (string, error) {
	if u.Scheme == "" || u.Host == "" {
		return "", errors.New("url must be absolute")
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		// An IPv6 literal keeps its brackets, as in the Host header.
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// Signature computes the HMAC-SHA1 oauth_signature of a request. params must
// hold every parameter that takes part in the signature: the oauth_* protocol
// parameters except oauth_signature (and realm), the query parameters and any
// form body parameters, all decoded. The query of rawURL is ignored, because
// the caller already passes its parameters; including them twice would give
// a different signature.
func Signature(method, rawURL string, params [][2]string, consumerSecret, tokenSecret string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse url: %w", err)
	}
	base, err := baseStringURI(u)
	if err != nil {
		return "", err
	}
	enc := make([][2]string, len(params))
	for i, p := range params {
		enc[i] = [2]string{percentEncode(p[0]), percentEncode(p[1])}
	}
	// §3.4.1.3.2: sort by encoded name, then by encoded value.
	sort.Slice(enc, func(i, j int) bool {
		if enc[i][0] != enc[j][0] {
			return enc[i][0] < enc[j][0]
		}
		return enc[i][1] < enc[j][1]
	})
	var norm strings.Builder
	for i, p := range enc {
		if i > 0 {
			norm.WriteByte('&')
		}
		norm.WriteString(p[0])
		norm.WriteByte('=')
		norm.WriteString(p[1])
	}
	baseString := strings.ToUpper(method) + "&" + percentEncode(base) + "&" + percentEncode(norm.String())
	mac := hmac.New(sha1.New, []byte(percentEncode(consumerSecret)+"&"+percentEncode(tokenSecret)))
	mac.Write([]byte(baseString))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Signer signs outcome requests for one consumer key. LTI 1.1 uses no token,
// so the token secret is always empty.
type Signer struct {
	Key, Secret string
	Now         func() time.Time // default time.Now
	Nonce       func() string    // default 16 random bytes as hex
}

func randomNonce() string {
	var b [16]byte
	// crypto/rand.Read does not fail on supported platforms (it panics
	// internally if the kernel source breaks), so the error is moot.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isForm reports whether the request body is application/x-www-form-urlencoded,
// whose parameters RFC 5849 signs directly and which the body-hash extension
// therefore must not hash.
func isForm(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// requestParams gathers the query parameters and, for form bodies, the body
// parameters that take part in the signature.
func requestParams(u *url.URL, h http.Header, body []byte) ([][2]string, error) {
	var params [][2]string
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("parse query: %w", err)
	}
	for k, vs := range q {
		for _, v := range vs {
			params = append(params, [2]string{k, v})
		}
	}
	if isForm(h) {
		f, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("parse form body: %w", err)
		}
		for k, vs := range f {
			for _, v := range vs {
				params = append(params, [2]string{k, v})
			}
		}
	}
	return params, nil
}

// Sign sets the OAuth Authorization header on req for the given body, which
// must be the exact bytes that will be sent. Every call uses a fresh nonce
// and timestamp, so a retried request is signed anew and an LMS that
// remembers nonces does not reject it as a replay.
func (s Signer) Sign(req *http.Request, body []byte) error {
	_, err := s.sign(req, body)
	return err
}

// sign is Sign, also returning the signature (for the client's redactor).
func (s Signer) sign(req *http.Request, body []byte) (string, error) {
	if s.Key == "" {
		return "", errors.New("empty consumer key")
	}
	now, nonce := time.Now, randomNonce
	if s.Now != nil {
		now = s.Now
	}
	if s.Nonce != nil {
		nonce = s.Nonce
	}
	oauth := [][2]string{
		{"oauth_consumer_key", s.Key},
		{"oauth_signature_method", "HMAC-SHA1"},
		{"oauth_timestamp", strconv.FormatInt(now().Unix(), 10)},
		{"oauth_nonce", nonce()},
		{"oauth_version", "1.0"},
	}
	if !isForm(req.Header) {
		oauth = append(oauth, [2]string{"oauth_body_hash", BodyHash(body)})
	}
	params, err := requestParams(req.URL, req.Header, body)
	if err != nil {
		return "", err
	}
	sig, err := Signature(req.Method, req.URL.String(), append(params, oauth...), s.Secret, "")
	if err != nil {
		return "", err
	}
	var h strings.Builder
	h.WriteString(`OAuth realm=""`)
	for _, p := range append(oauth, [2]string{"oauth_signature", sig}) {
		h.WriteString(`, `)
		h.WriteString(p[0])
		h.WriteString(`="`)
		h.WriteString(percentEncode(p[1]))
		h.WriteString(`"`)
	}
	req.Header.Set("Authorization", h.String())
	return sig, nil
}

// Verification errors, wrapped with detail; callers pick their HTTP answer
// with errors.Is.
var (
	ErrMalformed    = errors.New("malformed oauth request")
	ErrUnknownKey   = errors.New("unknown oauth consumer key")
	ErrTimestamp    = errors.New("oauth timestamp outside the allowed window")
	ErrBodyHash     = errors.New("oauth body hash mismatch")
	ErrBadSignature = errors.New("invalid oauth signature")
)

// Verified describes a request whose signature checked out.
type Verified struct {
	Key       string
	Nonce     string
	Timestamp time.Time
}

// parseAuthHeader reads the parameters of an "OAuth" Authorization header,
// percent-decoded. realm is dropped: RFC 5849 §3.4.1.3.1 signs every other
// header parameter. A repeated parameter is an error: two values would make
// it ambiguous which one was signed.
func parseAuthHeader(h string) (map[string]string, error) {
	const scheme = "oauth "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return nil, fmt.Errorf("%w: no oauth authorization header", ErrMalformed)
	}
	rest := h[len(scheme):]
	out := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return out, nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: bad authorization header parameter", ErrMalformed)
		}
		name := strings.TrimSpace(rest[:eq])
		rest = rest[eq+1:]
		var raw string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated quote in authorization header", ErrMalformed)
			}
			raw, rest = rest[1:1+end], rest[2+end:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			raw, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		name, err := url.PathUnescape(name)
		if err != nil {
			return nil, fmt.Errorf("%w: bad escape in authorization header", ErrMalformed)
		}
		val, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: bad escape in authorization header", ErrMalformed)
		}
		if name == "realm" {
			continue
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: repeated %s", ErrMalformed, name)
		}
		out[name] = val
	}
}

// requestURL gives the absolute URL the client signed. A server-side request
// carries only the path, so scheme and host come from the connection and the
// Host header; behind a TLS-terminating proxy this would need the forwarded
// scheme, which our loopback simulator never has.
func requestURL(req *http.Request) string {
	if req.URL.IsAbs() {
		return req.URL.String()
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	u := *req.URL
	u.Scheme, u.Host = scheme, req.Host
	return u.String()
}

// Verify checks an OAuth 1.0a HMAC-SHA1 request with the body-hash
// extension, as an LMS does for an outcome request, and returns the consumer
// key. It does not remember nonces: replay detection needs state and is the
// caller's job (VerifyRequest returns the nonce). maxSkew <= 0 disables the
// timestamp check. key is also returned with most errors, for logging.
func Verify(req *http.Request, body []byte, secretFor func(key string) (string, bool), now time.Time, maxSkew time.Duration) (key string, err error) {
	v, err := VerifyRequest(req, body, secretFor, now, maxSkew)
	return v.Key, err
}

// VerifyRequest is Verify returning the nonce and timestamp as well.
func VerifyRequest(req *http.Request, body []byte, secretFor func(key string) (string, bool), now time.Time, maxSkew time.Duration) (Verified, error) {
	p, err := parseAuthHeader(req.Header.Get("Authorization"))
	if err != nil {
		return Verified{}, err
	}
	for _, name := range []string{"oauth_consumer_key", "oauth_signature_method", "oauth_signature", "oauth_timestamp", "oauth_nonce"} {
		if p[name] == "" {
			return Verified{}, fmt.Errorf("%w: missing %s", ErrMalformed, name)
		}
	}
	if m := p["oauth_signature_method"]; m != "HMAC-SHA1" {
		return Verified{}, fmt.Errorf("%w: unsupported signature method %q", ErrMalformed, m)
	}
	if v, ok := p["oauth_version"]; ok && v != "1.0" {
		return Verified{}, fmt.Errorf("%w: unsupported oauth version %q", ErrMalformed, v)
	}
	ts, err := strconv.ParseInt(p["oauth_timestamp"], 10, 64)
	if err != nil || ts <= 0 {
		return Verified{}, fmt.Errorf("%w: bad oauth_timestamp", ErrMalformed)
	}
	v := Verified{Key: p["oauth_consumer_key"], Nonce: p["oauth_nonce"], Timestamp: time.Unix(ts, 0)}
	secret, ok := secretFor(v.Key)
	if !ok {
		return Verified{Key: v.Key}, ErrUnknownKey
	}
	if maxSkew > 0 {
		if d := now.Sub(v.Timestamp); d > maxSkew || d < -maxSkew {
			return Verified{Key: v.Key}, fmt.Errorf("%w: off by %s", ErrTimestamp, d.Round(time.Second))
		}
	}
	if !isForm(req.Header) {
		got, ok := p["oauth_body_hash"]
		if !ok {
			return Verified{Key: v.Key}, fmt.Errorf("%w: missing oauth_body_hash", ErrMalformed)
		}
		if !hmac.Equal([]byte(got), []byte(BodyHash(body))) {
			return Verified{Key: v.Key}, ErrBodyHash
		}
	}
	params, err := requestParams(req.URL, req.Header, body)
	if err != nil {
		return Verified{Key: v.Key}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for name, val := range p {
		if name != "oauth_signature" {
			params = append(params, [2]string{name, val})
		}
	}
	want, err := Signature(req.Method, requestURL(req), params, secret, "")
	if err != nil {
		return Verified{Key: v.Key}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !hmac.Equal([]byte(want), []byte(p["oauth_signature"])) {
		return Verified{Key: v.Key}, ErrBadSignature
	}
	return v, nil
}
