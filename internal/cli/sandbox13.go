package cli

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"sync"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/lmssim"
)

// runSandbox13 is `ltigrade sandbox --lti13`: the course's LTI 1.3
// platform, for a hub with LTI13Authenticator.
func runSandbox13(app *App, cfg *config.Config, f sandboxFlags, course lmssim.Course, listen, hubURL string) error {
	b := lmssim.LaunchBuilder{HubURL: hubURL, Course: course,
		Issuer: f.issuer, ClientID: f.clientID, DeploymentID: f.deploymentID}
	if b.Issuer == "" {
		b.Issuer = "http://sandbox.invalid" // the URL, once bound; a stand-in to check the rest now
	}
	// Check the course and registration before reading keys or binding a
	// port, so a typo fails fast with exit 2.
	if err := b.Validate13(); err != nil {
		return usageErr("sandbox: %v", err)
	}
	tool, err := sandboxToolKeys(cfg, f.toolJWKS)
	if err != nil {
		return err
	}
	ln, base, err := sandboxListen(app, listen, f.publicURL)
	if err != nil {
		return err
	}
	defer ln.Close()

	p := lmssim.NewPlatform(f.clientID, nil, "")
	for kid, pub := range tool {
		p.AddToolKey(pub, kid)
	}
	p.SetDeploymentID(f.deploymentID)
	if f.issuer != "" {
		p.SetIssuer(f.issuer)
	}
	b.Issuer, b.ClientID, b.DeploymentID = "", "", ""
	sb, err := lmssim.NewPlatformSandbox(p, b, base)
	if err != nil {
		return usageErr("sandbox: %v", err)
	}
	defer sb.Close()
	// The platform's own key, made now rather than on the hub's first
	// login, which would wait for it.
	if _, err := p.JWKS(); err != nil {
		return fmt.Errorf("sandbox: the platform's key: %w", err)
	}

	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(app.Out, format, a...)
	}
	hub := strings.TrimRight(hubURL, "/")
	say("%s/\n", base)
	say("ltigrade sandbox: LTI 1.3 platform for course %q (%s), %d student%s, %d assignment%s\n", course.Title, course.ID,
		len(course.Students), plural(len(course.Students), "s"), len(course.Assignments), plural(len(course.Assignments), "s"))
	say("  logins: %s/hub/lti13/oauth_login (redirect URI %s/hub/lti13/oauth_callback); nbgitpuller clones %s into %s\n",
		hub, hub, course.Repo, lmssim.RepoDir(course.Repo))
	say("  the hub's settings:\n")
	say("    c.JupyterHub.authenticator_class = \"ltiauthenticator.lti13.auth.LTI13Authenticator\"\n")
	say("    c.LTI13Authenticator.issuer = %q\n", p.Issuer())
	say("    c.LTI13Authenticator.client_id = [%q]\n", f.clientID)
	say("    c.LTI13Authenticator.authorize_url = %q\n", p.AuthURL())
	say("    c.LTI13Authenticator.jwks_endpoint = %q\n", p.JWKSURL())
	say("  ltigrade's [[lti13.platforms]] entry (with private_key_file):\n")
	say("    issuer = %q\n    client_id = %q\n    token_url = %q\n", p.Issuer(), f.clientID, p.TokenURL())
	say("  trusting %d tool key%s; roster %s; grade book %s/gradebook\n", len(tool), plural(len(tool), "s"),
		p.MembershipsURL(course.ID), base)
	say("Press Ctrl-C to stop.\n")
	p.OnScore(func(s lmssim.Score) {
		who := s.UserID + ", line item " + s.LineItemID
		if st, a, ok := sb.Who(s); ok {
			who = st + ", " + a
		}
		say("%s score %s/%s for %s\n", s.At.Local().Format("15:04:05"), fmtFloat(s.ScoreGiven), fmtFloat(s.ScoreMaximum), who)
	})

	if f.urlFile != "" {
		if err := writeFileAtomic(f.urlFile, []byte(base+"/\n")); err != nil {
			return fmt.Errorf("sandbox: --url-file: %w", err)
		}
	}
	if err := serveSandbox(app, ln, sb.Handler(), sb.Close); err != nil {
		return err
	}
	say("ltigrade sandbox: stopped\n")
	return nil
}

// sandboxToolKeys are the tool's public keys the token endpoint trusts, by
// kid: the JWKS in file, else those of every configured private_key_file
// (what `ltigrade keys jwks` prints).
func sandboxToolKeys(cfg *config.Config, file string) (map[string]*rsa.PublicKey, error) {
	out := map[string]*rsa.PublicKey{}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, usageErr("--tool-jwks: %s: %v", file, err)
		}
		set, err := parseRSAJWKS(data)
		if err != nil {
			return nil, usageErr("--tool-jwks: %s: %v", file, err)
		}
		return set, nil
	}
	for _, p := range cfg.LTI13.Platforms {
		k, err := keys.LoadFile(p.PrivateKeyFile)
		if err != nil {
			return nil, withCode(ExitUsage, err, "create it with: ltigrade keys generate --out "+p.PrivateKeyFile)
		}
		kid := p.KeyID
		if kid == "" {
			kid = k.KeyID()
		}
		out[kid] = k.Public()
	}
	if len(out) == 0 {
		return nil, withCode(ExitUsage, errors.New("sandbox: no tool key for the token endpoint to check ltigrade's client assertions with"),
			"add an [[lti13.platforms]] entry with the sandbox's issuer, client_id, token_url and a private_key_file (ltigrade keys generate), or pass --tool-jwks with the output of ltigrade keys jwks")
	}
	return out, nil
}

// parseRSAJWKS reads the RSA keys of a JWKS (the shape `ltigrade keys
// jwks` prints), by kid.
func parseRSAJWKS(data []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, N, E, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON key set: %v", err)
	}
	out := map[string]*rsa.PublicKey{}
	for i, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) < 128 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("key %d: bad n or e", i+1)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		kid := k.Kid
		if kid == "" {
			kid = keys.KeyID(pub)
		}
		out[kid] = pub
	}
	if len(out) == 0 {
		return nil, errors.New("no RSA key for signatures in it")
	}
	return out, nil
}
