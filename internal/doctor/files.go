package doctor

import (
	"fmt"
	"strings"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
)

// CheckConfig is check "config": the config file was found and parses, and
// it names something to sign grades for. Load already refuses a file with
// an inline secret that others can read and warns about one others can
// write; those warnings become this check's.
func CheckConfig(cfg *config.Config, loadErr error) Check {
	const name = "config"
	if loadErr != nil {
		return fail(name, "", loadErr.Error(), hintOf(loadErr, "fix the config file; see docs/configuration.md"))
	}
	if cfg.Source == "" {
		return fail(name, "", "no config file loaded (looked for "+strings.Join(cfg.Searched(), ", ")+")",
			"create "+config.SystemConfigFile+" (mode 600 if it holds a secret) with [[lti11.consumers]] or [[lti13.platforms]]; see docs/configuration.md")
	}
	if len(cfg.LTI11.Consumers) == 0 && len(cfg.LTI13.Platforms) == 0 {
		return fail(name, "", cfg.Source+" has no [[lti11.consumers]] and no [[lti13.platforms]]: no score can be signed",
			"add the LMS's consumer key and secret_file, or its LTI 1.3 registration, to "+cfg.Source)
	}
	detail := fmt.Sprintf("%s: %s, %s", cfg.Source,
		plural(len(cfg.LTI11.Consumers), "LTI 1.1 consumer", "LTI 1.1 consumers"),
		plural(len(cfg.LTI13.Platforms), "LTI 1.3 platform", "LTI 1.3 platforms"))
	if len(cfg.Warnings) > 0 {
		hint := ""
		for _, w := range cfg.Warnings {
			if strings.Contains(w, "writable by group or others") {
				hint = "chmod go-w " + cfg.Source
			}
		}
		return warn(name, "", detail+"; "+strings.Join(cfg.Warnings, "; "), hint)
	}
	return ok(name, "", detail)
}

// CheckSecrets checks every secret the config points at the way the
// commands that need them read them (mode 0600, regular file, not empty):
// checks "consumer_secret" (one per LTI 1.1 consumer), "platform_key" (one
// per LTI 1.3 platform), "database_password" and "hub_api_token" (when the
// config names their files). The values are read and dropped; only file
// names and the loaders' own messages, which never hold a secret, are kept.
func CheckSecrets(cfg *config.Config) []Check {
	var out []Check
	for _, k := range cfg.LTI11.Consumers {
		if _, err := cfg.ConsumerSecret(k.Key); err != nil {
			out = append(out, fail("consumer_secret", k.Key, err.Error(), hintOf(err, "")))
			continue
		}
		out = append(out, ok("consumer_secret", k.Key, k.SecretSource()))
	}
	for _, p := range cfg.LTI13.Platforms {
		subject := p.Issuer + " " + p.ClientID
		key, err := keys.LoadFile(p.PrivateKeyFile)
		if err != nil {
			out = append(out, fail("platform_key", subject, err.Error(),
				hintOf(err, "create it with: ltigrade keys generate --out "+p.PrivateKeyFile+" (and register `ltigrade keys jwks` with the LMS)")))
			continue
		}
		kid := p.KeyID
		if kid == "" {
			kid = key.KeyID()
		}
		out = append(out, ok("platform_key", subject, p.PrivateKeyFile+" (key id "+kid+")"))
	}
	if cfg.DatabasePasswordFile != "" {
		if _, err := cfg.DatabasePassword(); err != nil {
			out = append(out, fail("database_password", "", err.Error(), hintOf(err, "")))
		} else {
			out = append(out, ok("database_password", "", cfg.DatabasePasswordFile))
		}
	}
	if cfg.Service.HubAPITokenFile != "" {
		if _, err := cfg.HubAPIToken(); err != nil {
			out = append(out, fail("hub_api_token", "", err.Error(), hintOf(err, "")))
		} else {
			out = append(out, ok("hub_api_token", "", cfg.Service.HubAPITokenFile))
		}
	}
	return out
}
