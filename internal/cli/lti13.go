package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
)

// sender sends passbacks of either protocol.
func (app *App) sender() (passback.Sender, error) {
	st, err := app.Store()
	if err != nil {
		return nil, err
	}
	agsSender := &passback.AGSSender{Client: app.agsClient(st), Platform: app.platform,
		Found: func(ctx context.Context, p *store.Passback, lineitem string) {
			// Best effort: a failed write only costs another lookup.
			_ = st.SetLineItem(ctx, p.LaunchID, p.SessionID, lineitem)
		}}
	return passback.Protocols{
		"lti11": &passback.LTI11Sender{Client: &lti11.Client{HTTP: app.httpClient()}, Secret: app.secretFunc()},
		"ags":   agsSender,
	}, nil
}

// agsClient is an AGS client whose tokens are shared through the store by
// every ltigrade process (one token request per score would get the tool
// rate-limited).
func (app *App) agsClient(st store.Store) *ags.Client {
	return &ags.Client{HTTP: app.httpClient(), Cache: passback.StoreTokenCache{Store: st}}
}

// platform loads an LTI 1.3 registration with its private key. A key that
// cannot be loaded is a *config.SecretUnavailableError: the platform is
// configured, and scores for it can wait for the fix.
func (app *App) platform(issuer, clientID string) (ags.Platform, error) {
	cfg, err := app.Config()
	if err != nil {
		return ags.Platform{}, err
	}
	p, err := cfg.Platform(issuer, clientID)
	if err != nil {
		return ags.Platform{}, err
	}
	k, err := keys.LoadFile(p.PrivateKeyFile)
	if err != nil {
		return ags.Platform{}, &config.SecretUnavailableError{Hint: keyFileHint(p.PrivateKeyFile), Err: err}
	}
	kid := p.KeyID
	if kid == "" {
		kid = k.KeyID()
	}
	return ags.Platform{Issuer: p.Issuer, ClientID: p.ClientID, TokenURL: p.TokenURL, Audience: p.Audience,
		KeyID: kid, Key: k.RSA(), Canvas: p.Canvas}, nil
}

// keyFileHint says how to fix a private key file keys.LoadFile refused.
func keyFileHint(name string) string {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "create it with `ltigrade keys generate --out " + name + "` and register `ltigrade keys jwks` with the LMS"
	case errors.Is(err, fs.ErrPermission):
		return "make " + name + " readable by the user ltigrade runs as (its owner, mode 600)"
	case err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0:
		return "chmod 600 " + name
	}
	return "put the PEM private key registered with the LMS in " + name
}

// defaultKeyFile is where `keys generate` writes without --out: the key
// file of the first [[lti13.platforms]], else beside the config.
func defaultKeyFile(cfg *config.Config) string {
	if len(cfg.LTI13.Platforms) > 0 {
		return cfg.LTI13.Platforms[0].PrivateKeyFile
	}
	if cfg.Source != "" {
		return filepath.Join(filepath.Dir(cfg.Source), "lti13.pem")
	}
	return "lti13.pem"
}

func newKeysCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "The tool's LTI 1.3 key pair and its public JWKS"}
	var out string
	var bits int
	var force, asJSON bool
	gen := &cobra.Command{
		Use:   "generate [--out FILE]",
		Short: "Generate the tool's RSA key (mode 0600) and print its key id",
		Long: `Generate an RSA private key for LTI 1.3 (the client assertions ltigrade signs to get
AGS tokens), written PEM with mode 0600. Without --out it goes to the private_key_file of
the first [[lti13.platforms]] entry, else lti13.pem beside the config. An existing file
is never replaced without --force. The key id is the RFC 7638 thumbprint of the public key.
Then register the output of ` + "`ltigrade keys jwks`" + ` with the LMS.`,
		Example: "  ltigrade keys generate --out /etc/ltigrade/lti13.pem\n  ltigrade keys jwks > jwks.json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			if out == "" {
				out = defaultKeyFile(cfg)
			}
			k, err := keys.Generate(bits)
			if err != nil {
				return usageErr("%v", err)
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				return err
			}
			if err := keys.WriteFile(out, k, force); err != nil {
				if errors.Is(err, keys.ErrExists) {
					return withCode(ExitUsage, err, "pass --force to replace it (the LMS must then get the new JWKS)")
				}
				return err
			}
			if asJSON {
				return printJSON(app.Out, map[string]string{"path": out, "key_id": k.KeyID()})
			}
			_, err = fmt.Fprintf(app.Out, "wrote %s (key id %s); register `ltigrade keys jwks` with the LMS\n", out, k.KeyID())
			return err
		},
	}
	gen.Flags().StringVar(&out, "out", "", "key file (default: private_key_file of the first [[lti13.platforms]])")
	gen.Flags().IntVar(&bits, "bits", 2048, "RSA key size (2048..8192)")
	gen.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	gen.Flags().BoolVar(&asJSON, "json", false, "print {path, key_id} as JSON")

	var keyFiles []string
	jwks := &cobra.Command{
		Use:   "jwks",
		Short: "Print the public JWKS to register with the LMS",
		Long: `Print the public keys (JWKS JSON) of every private_key_file in [[lti13.platforms]], or of
--key files, to paste into the LMS's tool registration or to serve as its keyset URL.
Only public parts are printed.`,
		Example: "  ltigrade keys jwks\n  ltigrade keys jwks --key /etc/ltigrade/lti13.pem > /var/www/jwks.json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			type src struct{ file, kid string }
			var srcs []src
			for _, f := range keyFiles {
				srcs = append(srcs, src{file: f})
			}
			if len(srcs) == 0 {
				for _, p := range cfg.LTI13.Platforms {
					srcs = append(srcs, src{file: p.PrivateKeyFile, kid: p.KeyID})
				}
			}
			if len(srcs) == 0 {
				return usageErr("no key: pass --key FILE or add [[lti13.platforms]] with private_key_file to the config")
			}
			set := keys.JWKSet{Keys: []keys.JWK{}}
			seen := map[string]bool{}
			for _, s := range srcs {
				k, err := keys.LoadFile(s.file)
				if err != nil {
					return withCode(ExitUsage, err, "create it with: ltigrade keys generate --out "+s.file)
				}
				kid := s.kid
				if kid == "" {
					kid = k.KeyID()
				}
				if seen[kid] {
					continue
				}
				seen[kid] = true
				set.Keys = append(set.Keys, keys.PublicJWK(k.Public(), kid))
			}
			return printJSON(app.Out, set)
		},
	}
	jwks.Flags().StringSliceVar(&keyFiles, "key", nil, "private key file(s) instead of the config's")
	cmd.AddCommand(gen, jwks)
	return cmd
}

// agsTarget checks that an LTI 1.3 session can take a score and that its
// platform is configured (before anything is journaled).
func agsTarget(app *App, s *store.Session) error {
	if s.LineItem == "" && s.LineItems == "" {
		return withCode(ExitNoSession, fmt.Errorf("launch %d of %s has no grade service: the platform sent no AGS endpoint claim for %q", s.LaunchID, s.Username, s.ResourceLinkTitle),
			"enable Assignment and Grade Services for the tool in the LMS, make the link graded, and have the student launch it again")
	}
	if len(s.AGSScopes) > 0 && !hasScope(s.AGSScopes, ags.ScopeScore) {
		return withCode(ExitNoSession, fmt.Errorf("launch %d of %s does not grant the AGS score scope", s.LaunchID, s.Username), "add the score scope to the tool's registration in the LMS")
	}
	if _, err := app.platform(s.Platform, s.ClientID); err != nil {
		if _, ok := secretUnavailable(err); ok {
			return err
		}
		return withCode(ExitUsage, err, "add the platform to [[lti13.platforms]] and its key with `ltigrade keys generate`")
	}
	return nil
}

func hasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if strings.TrimSpace(s) == want {
			return true
		}
	}
	return false
}

// runAGSResult reads (GET {lineitem}/results?user_id=) the grade an LTI
// 1.3 platform holds. AGS has no delete.
func runAGSResult(app *App, sess *store.Session, op lti11.Op, asJSON bool) error {
	if op != lti11.ReadResult {
		return usageErr("LTI 1.3 Assignment and Grade Services cannot delete a result; send a new score instead")
	}
	plat, err := app.platform(sess.Platform, sess.ClientID)
	if err != nil {
		return withCode(ExitUsage, err, "")
	}
	st, err := app.Store()
	if err != nil {
		return err
	}
	c := app.agsClient(st)
	ctx := app.Context()
	lineitem := sess.LineItem
	out := struct {
		SessionID     int64    `json:"session_id"`
		LaunchID      int64    `json:"launch_id"`
		Username      string   `json:"username"`
		Operation     string   `json:"operation"`
		Status        string   `json:"status"`
		Score         string   `json:"score,omitempty"`
		HasScore      bool     `json:"has_score"`
		ResultScore   *float64 `json:"result_score,omitempty"`
		ResultMaximum *float64 `json:"result_maximum,omitempty"`
		Message       string   `json:"message,omitempty"`
	}{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Operation: string(op)}
	fail := func(err error) error {
		var ae *ags.Error
		code := ExitError
		out.Status, out.Message = "error", err.Error()
		if errors.As(err, &ae) {
			out.Status, code = "retry", ExitQueued
			if ae.Status == ags.Rejected {
				out.Status, code = "rejected", ExitRejected
			}
		}
		var le *ags.LineItemError
		if errors.As(err, &le) {
			out.Status, code = "rejected", ExitRejected
		}
		if asJSON {
			if err := printJSON(app.Out, out); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(app.Out, "%s failed (%s): %s\n", op, out.Status, out.Message)
		}
		return &silentExit{code: code}
	}
	if lineitem == "" {
		if lineitem, err = c.FindLineItem(ctx, plat, sess.LineItems, sess.ResourceLinkID); err != nil {
			return fail(err)
		}
	}
	results, err := c.Results(ctx, plat, lineitem, sess.LTIUserID)
	if err != nil {
		return fail(err)
	}
	out.Status = "success"
	for _, r := range results {
		if r.UserID == sess.LTIUserID && r.ResultScore != nil {
			out.HasScore, out.ResultScore, out.ResultMaximum = true, r.ResultScore, r.ResultMaximum
			frac := *r.ResultScore
			if r.ResultMaximum != nil && *r.ResultMaximum > 0 {
				frac = *r.ResultScore / *r.ResultMaximum
			}
			out.Score = fmtFloat(frac)
		}
	}
	if asJSON {
		return printJSON(app.Out, out)
	}
	if !out.HasScore {
		_, err = fmt.Fprintln(app.Out, "no grade")
		return err
	}
	max := "1"
	if out.ResultMaximum != nil {
		max = fmtFloat(*out.ResultMaximum)
	}
	_, err = fmt.Fprintf(app.Out, "%s (%s/%s)\n", out.Score, fmtFloat(*out.ResultScore), max)
	return err
}
