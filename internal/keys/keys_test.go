package keys

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	testKeyOnce sync.Once
	testKey     PrivateKey
)

func key(t *testing.T) PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		k, err := Generate(0)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

func TestKeyIDRFC7638Example(t *testing.T) {
	// RFC 7638 section 3.1.
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if got, want := KeyID(pub), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
}

func TestGenerateSizes(t *testing.T) {
	k := key(t)
	if got := k.RSA().N.BitLen(); got != DefaultBits {
		t.Fatalf("default key has %d bits", got)
	}
	for _, bits := range []int{1024, 2047, 16384} {
		if _, err := Generate(bits); err == nil {
			t.Errorf("Generate(%d) succeeded", bits)
		}
	}
}

func TestPrivateKeyNeverPrints(t *testing.T) {
	k := key(t)
	secret := k.RSA().D.String()
	type holder struct {
		K PrivateKey
		P *PrivateKey
	}
	h := holder{K: k, P: &k}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, h))
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j), k.String(), k.GoString())
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("x", "key", k)
	outs = append(outs, sb.String())
	for _, o := range outs {
		if strings.Contains(o, secret) || strings.Contains(o, k.RSA().N.String()) {
			t.Fatalf("key material printed: %.80s", o)
		}
	}
	if fmt.Sprint(k) != "[redacted]" || string(j) != `{"K":"[redacted]","P":"[redacted]"}` {
		t.Fatalf("got %q and %s", fmt.Sprint(k), j)
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	k := key(t)
	name := filepath.Join(t.TempDir(), "lti13.pem")
	if err := WriteFile(name, k, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(name)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Fatalf("not PKCS #8 PEM: %.40q", data)
	}
	got, err := LoadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RSA().Equal(k.RSA()) || got.KeyID() != k.KeyID() {
		t.Fatal("loaded key differs")
	}
	// No stray temporary files.
	ents, _ := os.ReadDir(filepath.Dir(name))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries", len(ents))
	}
}

func TestWriteRefusesOverwrite(t *testing.T) {
	k := key(t)
	name := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(name, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(name, k, false)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if data, _ := os.ReadFile(name); string(data) != "keep me" {
		t.Fatal("existing file changed")
	}
	ents, _ := os.ReadDir(filepath.Dir(name))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries", len(ents))
	}
	if err := WriteFile(name, k, true); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadFile(name); err != nil || !got.RSA().Equal(k.RSA()) {
		t.Fatalf("overwrite: %v", err)
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir.pem"), k, false); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestLoadRefusesLooseModes(t *testing.T) {
	if os.Geteuid() == 0 {
		// root can read anything, but the mode check does not depend on that.
		t.Log("running as root")
	}
	k := key(t)
	name := filepath.Join(t.TempDir(), "k.pem")
	if err := WriteFile(name, k, false); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o602, 0o644} {
		if err := os.Chmod(name, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadFile(name)
		want := fmt.Sprintf("has mode %04o; it must not be readable or writable by group or others (chmod 600 %s)", mode, name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mode %04o: err = %v", mode, err)
		}
		// The CLI's hint depends on the kind: chmod, not "add the platform".
		var me *ModeError
		if !errors.As(err, &me) || me.Path != name || me.Mode != mode || me.Hint() != "chmod 600 "+name {
			t.Errorf("mode %04o: err = %#v, want a *ModeError", mode, err)
		}
	}
	os.Chmod(name, 0o400)
	if _, err := LoadFile(name); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		write("empty.pem", ""): "no PEM block",
		write("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"): `"CERTIFICATE"`,
		write("bad.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):  "invalid PKCS #8",
		dir:                               "not a regular file",
		filepath.Join(dir, "missing.pem"): "no such file",
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, want := range cases {
		_, err := LoadFile(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
	big := write("big.pem", strings.Repeat("x", MaxKeyFileSize+1))
	if _, err := LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big: %v", err)
	}
}

func TestJWKS(t *testing.T) {
	k := key(t)
	out, err := JWKS(k.Public(), "")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(out, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	j := set.Keys[0]
	if j["kty"] != "RSA" || j["alg"] != "RS256" || j["use"] != "sig" || j["kid"] != k.KeyID() || j["e"] != "AQAB" {
		t.Fatalf("jwk = %v", j)
	}
	n, err := base64.RawURLEncoding.DecodeString(j["n"].(string))
	if err != nil || new(big.Int).SetBytes(n).Cmp(k.RSA().N) != 0 {
		t.Fatal("n does not round-trip")
	}
	if len(j) != 6 {
		t.Fatalf("unexpected members (private material?): %v", j)
	}
	if strings.Contains(string(out), base64.RawURLEncoding.EncodeToString(k.RSA().D.Bytes())) {
		t.Fatal("private exponent in JWKS")
	}
	out2, _ := JWKS(k.Public(), "custom")
	if !strings.Contains(string(out2), `"kid": "custom"`) {
		t.Fatalf("kid override ignored: %s", out2)
	}
	if k.KeyID() != KeyID(k.Public()) || len(k.KeyID()) != 43 {
		t.Fatal("key id not stable")
	}
}
