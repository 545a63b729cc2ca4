package lti11

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// pyltiBody is the outcome request body of the pylti test vector (field
// notes §5), byte for byte.
const pyltiBody = "<?xml version='1.0' encoding='utf-8'?>\n<imsx_POXEnvelopeRequest xmlns=\"http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0\"><imsx_POXHeader><imsx_POXRequestHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier/></imsx_POXRequestHeaderInfo></imsx_POXHeader><imsx_POXBody><replaceResultRequest><resultRecord><sourcedGUID><sourcedId>foo</sourcedId></sourcedGUID></resultRecord></replaceResultRequest></imsx_POXBody></imsx_POXEnvelopeRequest>"

func TestBodyHashVectors(t *testing.T) {
	for body, want := range map[string]string{
		"Hello World!": "Lve95gjOVATpfV8EL5X4nxwjKHE=",
		"":             "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
		pyltiBody:      "glWvnsZZ8lMif1ATz8Tx64CTTaY=",
	} {
		if got := BodyHash([]byte(body)); got != want {
			t.Errorf("BodyHash(%.20q) = %s, want %s", body, got, want)
		}
	}
}

func TestSignatureVectors(t *testing.T) {
	cases := []struct {
		name, method, url string
		params            [][2]string
		secret, tokSecret string
		want              string
	}{
		{
			name: "rfc5849 1.2 with token", method: "GET",
			url: "http://photos.example.net/photos?file=vacation.jpg&size=original",
			params: [][2]string{
				{"file", "vacation.jpg"}, {"size", "original"},
				{"oauth_consumer_key", "dpf43f3p2l4k3l03"}, {"oauth_token", "nnch734d00sl2jdk"},
				{"oauth_signature_method", "HMAC-SHA1"}, {"oauth_timestamp", "137131202"},
				{"oauth_nonce", "chapoH"}, // the RFC example sends no oauth_version
			},
			secret: "kd94hf93k423kf44", tokSecret: "pfkkdhi9sl3r4s00",
			want: "MdpQcU8iPSUjWoN/UDMsK2sui9I=",
		},
		{
			name: "rfc5849 1.2 initiate", method: "POST", url: "https://photos.example.net/initiate",
			params: [][2]string{
				{"oauth_consumer_key", "dpf43f3p2l4k3l03"}, {"oauth_signature_method", "HMAC-SHA1"},
				{"oauth_timestamp", "137131200"}, {"oauth_nonce", "wIjqoS"},
				{"oauth_callback", "http://printer.example.com/ready"},
			},
			secret: "kd94hf93k423kf44",
			want:   "74KNZJeDHnMBp0EMJ9ZHt/XKycU=",
		},
		{
			name: "pylti outcome", method: "POST", url: "http://example.edu/",
			params: [][2]string{
				{"oauth_body_hash", "glWvnsZZ8lMif1ATz8Tx64CTTaY="}, {"oauth_consumer_key", "consumer"},
				{"oauth_nonce", "my_nonce"}, {"oauth_signature_method", "HMAC-SHA1"},
				{"oauth_timestamp", "1234567890"}, {"oauth_version", "1.0"},
			},
			secret: "secret",
			want:   "XR6A1CmUauXZdJZXa1pJpTQi6OQ=",
		},
	}
	for _, c := range cases {
		got, err := Signature(c.method, c.url, c.params, c.secret, c.tokSecret)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: signature %s, want %s", c.name, got, c.want)
		}
	}
}

func TestSignerPyltiVector(t *testing.T) {
	req := httptest.NewRequest("POST", "http://example.edu/", strings.NewReader(pyltiBody))
	req.Header.Set("Content-Type", "application/xml")
	s := Signer{Key: "consumer", Secret: "secret",
		Now:   func() time.Time { return time.Unix(1234567890, 0) },
		Nonce: func() string { return "my_nonce" }}
	if err := s.Sign(req, []byte(pyltiBody)); err != nil {
		t.Fatal(err)
	}
	p, err := parseAuthHeader(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if p["oauth_body_hash"] != "glWvnsZZ8lMif1ATz8Tx64CTTaY=" || p["oauth_signature"] != "XR6A1CmUauXZdJZXa1pJpTQi6OQ=" {
		t.Errorf("header %q", req.Header.Get("Authorization"))
	}
	if !strings.HasPrefix(req.Header.Get("Authorization"), `OAuth realm="", oauth_consumer_key="consumer"`) {
		t.Errorf("header layout %q", req.Header.Get("Authorization"))
	}
	// The signature's '=' must be percent-encoded in the header.
	if !strings.Contains(req.Header.Get("Authorization"), `oauth_signature="XR6A1CmUauXZdJZXa1pJpTQi6OQ%3D"`) {
		t.Errorf("signature not percent-encoded: %q", req.Header.Get("Authorization"))
	}
}

func TestPercentEncode(t *testing.T) {
	for in, want := range map[string]string{
		"abcABC123-._~": "abcABC123-._~",
		"a b+c":         "a%20b%2Bc",
		"ü&=*":          "%C3%BC%26%3D%2A",
		"%":             "%25",
	} {
		if got := percentEncode(in); got != want {
			t.Errorf("percentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBaseStringURI(t *testing.T) {
	for in, want := range map[string]string{
		"HTTP://Example.COM:80/a/b?x=1#f":  "http://example.com/a/b",
		"https://example.com:443":          "https://example.com/",
		"https://example.com:8443/p%20q":   "https://example.com:8443/p%20q",
		"http://example.com:443/":          "http://example.com:443/",
		"http://user:pw@example.com/x":     "http://example.com/x",
		"http://[::1]:8080/outcomes":       "http://[::1]:8080/outcomes",
		"http://127.0.0.1:54321/outcomes/": "http://127.0.0.1:54321/outcomes/",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := baseStringURI(u)
		if err != nil || got != want {
			t.Errorf("baseStringURI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Signature("GET", "/relative", nil, "s", ""); err == nil {
		t.Error("relative url accepted")
	}
}

func TestSignFreshNonceEachCall(t *testing.T) {
	s := Signer{Key: "k", Secret: "s"}
	seen := map[string]bool{}
	for range 3 {
		req := httptest.NewRequest("POST", "http://lms.example/outcomes", nil)
		if err := s.Sign(req, []byte("x")); err != nil {
			t.Fatal(err)
		}
		p, _ := parseAuthHeader(req.Header.Get("Authorization"))
		if len(p["oauth_nonce"]) != 32 || seen[p["oauth_nonce"]] {
			t.Fatalf("nonce %q", p["oauth_nonce"])
		}
		seen[p["oauth_nonce"]] = true
	}
}

// serverRequest signs a client request and turns it into what a server sees.
func serverRequest(t *testing.T, s Signer, rawURL, contentType string, body []byte) *http.Request {
	t.Helper()
	c := httptest.NewRequest("POST", rawURL, nil)
	c.Header.Set("Content-Type", contentType)
	if err := s.Sign(c, body); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(rawURL)
	r := httptest.NewRequest("POST", u.RequestURI(), strings.NewReader(string(body)))
	r.Host = u.Host
	r.Header = c.Header.Clone()
	return r
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	secrets := func(k string) (string, bool) {
		if k == "key" {
			return "s3cr&t", true
		}
		return "", false
	}
	body := []byte("<x/>")
	good := Signer{Key: "key", Secret: "s3cr&t", Now: func() time.Time { return now }}
	const u = "http://LMS.example:80/outcomes?a=1&b=x+y&a=0&empty="

	r := serverRequest(t, good, u, "application/xml", body)
	v, err := VerifyRequest(r, body, secrets, now.Add(time.Minute), 90*time.Minute)
	if err != nil || v.Key != "key" || v.Nonce == "" || !v.Timestamp.Equal(now) {
		t.Fatalf("good request: %+v %v", v, err)
	}

	form := []byte("x=1&y=%C3%BC")
	r = serverRequest(t, good, "http://lms.example/outcomes", "application/x-www-form-urlencoded", form)
	if strings.Contains(r.Header.Get("Authorization"), "oauth_body_hash") {
		t.Error("form request carries a body hash")
	}
	if _, err := Verify(r, form, secrets, now, time.Minute); err != nil {
		t.Errorf("form request: %v", err)
	}
	if _, err := Verify(r, []byte("x=2&y=%C3%BC"), secrets, now, time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered form: %v", err)
	}

	check := func(name string, r *http.Request, body []byte, want error) {
		t.Helper()
		if _, err := Verify(r, body, secrets, now, 90*time.Minute); !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", name, err, want)
		}
	}
	check("altered body", serverRequest(t, good, u, "application/xml", body), []byte("<y/>"), ErrBodyHash)
	check("wrong secret", serverRequest(t, Signer{Key: "key", Secret: "nope", Now: good.Now}, u, "application/xml", body), body, ErrBadSignature)
	check("unknown key", serverRequest(t, Signer{Key: "who", Secret: "s3cr&t", Now: good.Now}, u, "application/xml", body), body, ErrUnknownKey)
	old := Signer{Key: "key", Secret: "s3cr&t", Now: func() time.Time { return now.Add(-91 * time.Minute) }}
	check("old timestamp", serverRequest(t, old, u, "application/xml", body), body, ErrTimestamp)
	future := Signer{Key: "key", Secret: "s3cr&t", Now: func() time.Time { return now.Add(91 * time.Minute) }}
	check("future timestamp", serverRequest(t, future, u, "application/xml", body), body, ErrTimestamp)

	r = serverRequest(t, good, u, "application/xml", body)
	r.URL.RawQuery = "a=1"
	check("altered query", r, body, ErrBadSignature)
	r = serverRequest(t, good, u, "application/xml", body)
	r.URL.Path = "/other"
	check("altered path", r, body, ErrBadSignature)
	r = serverRequest(t, good, u, "application/xml", body)
	r.Host = "evil.example"
	check("altered host", r, body, ErrBadSignature)

	for name, h := range map[string]string{
		"no header":       "",
		"basic auth":      "Basic Zm9vOmJhcg==",
		"no signature":    `OAuth oauth_consumer_key="key", oauth_nonce="n", oauth_timestamp="1700000000", oauth_signature_method="HMAC-SHA1", oauth_body_hash="x"`,
		"rsa":             `OAuth oauth_consumer_key="key", oauth_nonce="n", oauth_timestamp="1700000000", oauth_signature_method="RSA-SHA1", oauth_signature="x"`,
		"duplicate param": `OAuth oauth_consumer_key="key", oauth_consumer_key="other", oauth_nonce="n", oauth_timestamp="1700000000", oauth_signature_method="HMAC-SHA1", oauth_signature="x"`,
		"bad timestamp":   `OAuth oauth_consumer_key="key", oauth_nonce="n", oauth_timestamp="soon", oauth_signature_method="HMAC-SHA1", oauth_signature="x"`,
		"unterminated":    `OAuth oauth_consumer_key="key`,
		"bad escape":      `OAuth oauth_consumer_key="%zz"`,
		"version 2":       `OAuth oauth_consumer_key="key", oauth_nonce="n", oauth_timestamp="1700000000", oauth_signature_method="HMAC-SHA1", oauth_signature="x", oauth_version="2.0"`,
		"no body hash":    `OAuth oauth_consumer_key="key", oauth_nonce="n", oauth_timestamp="1700000000", oauth_signature_method="HMAC-SHA1", oauth_signature="x"`,
	} {
		r := httptest.NewRequest("POST", "/outcomes", strings.NewReader("<x/>"))
		r.Header.Set("Content-Type", "application/xml")
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		check(name, r, body, ErrMalformed)
	}
}

func TestParseAuthHeaderLenient(t *testing.T) {
	// Unquoted values, no spaces after commas and a lower-case scheme occur
	// in the wild; realm is not signed, other parameters are (RFC 5849
	// §3.4.1.3.1).
	p, err := parseAuthHeader(`oauth realm="x",oauth_nonce=abc,foo="b%20r" , oauth_signature="a%2Bb%3D"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || p["oauth_nonce"] != "abc" || p["oauth_signature"] != "a+b=" || p["foo"] != "b r" {
		t.Errorf("got %v", p)
	}
}
