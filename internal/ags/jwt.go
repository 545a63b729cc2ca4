package ags

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// AssertionLifetime is how long a client assertion is valid (exp - iat).
const AssertionLifetime = 60 * time.Second

// Assertion builds the RS256-signed JWT that authenticates ltigrade at a
// platform's token endpoint (RFC 7523 client authentication, as LTI 1.3
// requires): header {alg RS256, typ JWT, kid}, claims iss = sub = clientID,
// aud = audience, iat = now, exp = iat + 60 s, and a random jti.
func Assertion(clientID, audience, kid string, key *rsa.PrivateKey, now time.Time) (string, error) {
	switch {
	case clientID == "":
		return "", errors.New("assertion: empty client_id")
	case audience == "":
		return "", errors.New("assertion: empty audience")
	case key == nil:
		return "", errors.New("assertion: no private key")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	iat := now.Unix()
	claims := map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": audience,
		"iat": iat,
		"exp": iat + int64(AssertionLifetime/time.Second),
		"jti": hex.EncodeToString(jti),
	}
	return signRS256(header, claims, key)
}

func signRS256(header map[string]string, claims map[string]any, key *rsa.PrivateKey) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		// The error text never includes key material.
		return "", errors.New("assertion: signing failed: " + err.Error())
	}
	return signing + "." + enc.EncodeToString(sig), nil
}
