package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
)

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
