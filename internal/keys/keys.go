// Package keys manages ltigrade's LTI 1.3 tool key: an RSA key pair whose
// private half signs client assertions (RS256) and whose public half the LMS
// fetches as a JWKS.
//
// The private key file is PEM "PRIVATE KEY" (PKCS #8), mode 0600. Like the
// LTI 1.1 secret files, a key file that group or others may read or write
// is refused: a leaked tool key lets anyone post grades for every course.
package keys

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// DefaultBits is the size Generate uses when asked for 0 bits.
const DefaultBits = 2048

// MinBits is the smallest key Generate or Load accepts.
const MinBits = 2048

// MaxBits bounds generation and loading: larger keys only cost time.
const MaxBits = 8192

// MaxKeyFileSize bounds key files: an 8192-bit PKCS #8 PEM is under 7 KiB.
const MaxKeyFileSize = 64 << 10

const redacted = "[redacted]"

// PrivateKey wraps the tool's RSA private key. Every way of printing or
// encoding it gives "[redacted]"; RSA is the only way to the key itself.
type PrivateKey struct {
	k *rsa.PrivateKey
}

// Wrap wraps an existing key (for tests and callers that made their own).
func Wrap(k *rsa.PrivateKey) PrivateKey { return PrivateKey{k: k} }

// RSA returns the key, for the assertion signer and nothing else.
func (p PrivateKey) RSA() *rsa.PrivateKey { return p.k }

// Public returns the public half, or nil for the zero PrivateKey.
func (p PrivateKey) Public() *rsa.PublicKey {
	if p.k == nil {
		return nil
	}
	return &p.k.PublicKey
}

// KeyID is the RFC 7638 thumbprint of the public half ("" for the zero key).
func (p PrivateKey) KeyID() string {
	if p.k == nil {
		return ""
	}
	return KeyID(&p.k.PublicKey)
}

func (PrivateKey) String() string               { return redacted }
func (PrivateKey) GoString() string             { return redacted }
func (PrivateKey) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redacted) }
func (PrivateKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (PrivateKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (PrivateKey) LogValue() slog.Value         { return slog.StringValue(redacted) }

// Generate makes a new RSA key of bits bits (0: DefaultBits).
func Generate(bits int) (PrivateKey, error) {
	if bits == 0 {
		bits = DefaultBits
	}
	if bits < MinBits || bits > MaxBits {
		return PrivateKey{}, fmt.Errorf("key size %d bits: want %d to %d", bits, MinBits, MaxBits)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generating RSA key: %w", err)
	}
	return PrivateKey{k: k}, nil
}

// EncodePEM returns the key as a PEM "PRIVATE KEY" (PKCS #8) block.
func EncodePEM(p PrivateKey) ([]byte, error) {
	if p.k == nil {
		return nil, errors.New("no key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(p.k)
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ErrExists is returned (wrapped) by WriteFile when the file exists and
// overwrite was not asked for.
var ErrExists = errors.New("key file already exists")

// WriteFile writes the key to name with mode 0600, atomically: the key goes
// to a temporary file in the same directory first, so a crash leaves either
// the old file or the complete new one. Without overwrite an existing file
// is never replaced (the check and the creation are one step: a hard link).
func WriteFile(name string, p PrivateKey, overwrite bool) error {
	data, err := EncodePEM(p)
	if err != nil {
		return err
	}
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing key file %s: %w", name, unwrapPath(err))
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a rename; removes the spare link otherwise
	// CreateTemp already uses 0600; Chmod makes it explicit whatever the umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file %s: %w", name, unwrapPath(err))
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file %s: %w", name, unwrapPath(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key file %s: %w", name, unwrapPath(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing key file %s: %w", name, unwrapPath(err))
	}
	if overwrite {
		err = os.Rename(tmpName, name)
	} else {
		err = os.Link(tmpName, name)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s (use --force to replace it)", ErrExists, name)
		}
	}
	if err != nil {
		return fmt.Errorf("writing key file %s: %w", name, unwrapPath(err))
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return nil
}

// ModeError is a key file that group or others may read or write.
type ModeError struct {
	Path string
	Mode fs.FileMode // permission bits
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("key file %s has mode %04o; it must not be readable or writable by group or others (chmod 600 %s)",
		e.Path, e.Mode, e.Path)
}

// Hint is the fix the CLI suggests.
func (e *ModeError) Hint() string { return "chmod 600 " + e.Path }

// LoadFile reads a PEM private key (PKCS #8 or PKCS #1), refusing files that
// group or others can read or write, non-regular files, oversized files and
// keys under MinBits.
func LoadFile(name string) (PrivateKey, error) {
	// O_NONBLOCK keeps a FIFO from blocking the open; the checks below then
	// refuse it. Checking the opened file leaves no gap before the read.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("cannot open key file %s: %w", name, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return PrivateKey{}, fmt.Errorf("key file %s: %w", name, unwrapPath(err))
	}
	switch mode := fi.Mode(); {
	case !mode.IsRegular():
		return PrivateKey{}, fmt.Errorf("key file %s is not a regular file (%s)", name, mode.Type())
	case mode.Perm()&0o077 != 0:
		return PrivateKey{}, &ModeError{Path: name, Mode: mode.Perm()}
	case fi.Size() > MaxKeyFileSize:
		return PrivateKey{}, fmt.Errorf("key file %s is larger than %d KiB; it must hold only the key", name, MaxKeyFileSize>>10)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("reading key file %s: %w", name, unwrapPath(err))
	}
	if len(data) > MaxKeyFileSize {
		return PrivateKey{}, fmt.Errorf("key file %s is larger than %d KiB; it must hold only the key", name, MaxKeyFileSize>>10)
	}
	// Parsing validates and precomputes the RSA key (~130 us), most of a
	// send's CPU when the key is loaded per attempt: reuse the parse of
	// identical bytes. The file is still opened, checked and read each time.
	sum := sha256.Sum256(data)
	parsed.Lock()
	p, ok := parsed.m[sum]
	parsed.Unlock()
	if ok {
		return p, nil
	}
	p, err = ParsePEM(data)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("key file %s: %w", name, err)
	}
	parsed.Lock()
	if parsed.m == nil || len(parsed.m) > 16 {
		parsed.m = map[[32]byte]PrivateKey{}
	}
	parsed.m[sum] = p
	parsed.Unlock()
	return p, nil
}

// parsed holds keys parsed by LoadFile, by the SHA-256 of their file's bytes.
var parsed struct {
	sync.Mutex
	m map[[32]byte]PrivateKey
}

// ParsePEM parses the first PEM private key block in data. Errors never
// include the data.
func ParsePEM(data []byte) (PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return PrivateKey{}, errors.New("no PEM block found (want a PEM \"PRIVATE KEY\")")
	}
	var k *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return PrivateKey{}, errors.New("invalid PKCS #8 private key")
		}
		rk, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return PrivateKey{}, fmt.Errorf("not an RSA key (%T); LTI 1.3 needs RS256", parsed)
		}
		k = rk
	case "RSA PRIVATE KEY":
		rk, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return PrivateKey{}, errors.New("invalid PKCS #1 private key")
		}
		k = rk
	default:
		return PrivateKey{}, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\"", block.Type)
	}
	if bits := k.N.BitLen(); bits < MinBits || bits > MaxBits {
		return PrivateKey{}, fmt.Errorf("RSA key has %d bits; want %d to %d", bits, MinBits, MaxBits)
	}
	return PrivateKey{k: k}, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err // callers name the path themselves
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func exponent(pub *rsa.PublicKey) []byte { return big.NewInt(int64(pub.E)).Bytes() }

// KeyID is the RFC 7638 JWK thumbprint of pub: base64url(SHA-256 of the
// canonical {"e","kty","n"} JSON). It is stable for a key and changes with
// it, so a rotated key gets a new kid.
func KeyID(pub *rsa.PublicKey) string {
	canon := `{"e":"` + b64(exponent(pub)) + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

// JWK is one public key as a JSON Web Key.
type JWK struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// JWKSet is a JSON Web Key Set.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK describes pub for RS256 signatures; kid "" means KeyID(pub).
func PublicJWK(pub *rsa.PublicKey, kid string) JWK {
	if kid == "" {
		kid = KeyID(pub)
	}
	return JWK{Kty: "RSA", Alg: "RS256", Use: "sig", Kid: kid, N: b64(pub.N.Bytes()), E: b64(exponent(pub))}
}

// JWKS returns the indented JSON key set holding pub (kid "" means
// KeyID(pub)), followed by a newline.
func JWKS(pub *rsa.PublicKey, kid string) ([]byte, error) {
	if pub == nil {
		return nil, errors.New("no key")
	}
	out, err := json.MarshalIndent(JWKSet{Keys: []JWK{PublicJWK(pub, kid)}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
