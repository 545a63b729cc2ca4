package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/store"
)

// envFields are the launch fields `ltigrade env` may export, by the names
// hub.env uses (LTI parameter names where LTI has one). None is a secret or
// a grade target: outcome URL, sourcedid, line items and auth_state stay in
// the store, out of reach of the student who owns the server.
var envFields = []envField{
	{"context_id", func(s *store.Session) string { return s.ContextID }},
	{"context_label", func(s *store.Session) string { return s.ContextLabel }},
	{"context_title", func(s *store.Session) string { return s.ContextTitle }},
	{"resource_link_id", func(s *store.Session) string { return s.ResourceLinkID }},
	{"resource_link_title", func(s *store.Session) string { return s.ResourceLinkTitle }},
	{"roles", func(s *store.Session) string { return s.Roles }},
	{"lti_version", func(s *store.Session) string { return s.Version }},
	{"platform", func(s *store.Session) string { return s.Platform }},
	{"lti_user_id", func(s *store.Session) string { return s.LTIUserID }},
	{"deployment_id", func(s *store.Session) string { return s.DeploymentID }},
	{"checkout", func(s *store.Session) string { return s.Checkout }},
	{"opened", func(s *store.Session) string { return s.Opened }},
	{"launched_at", func(s *store.Session) string { return s.LaunchedAt.UTC().Format(time.RFC3339) }},
	{"session_id", func(s *store.Session) string { return strconv.FormatInt(s.ID, 10) }},
}

type envField struct {
	name string
	get  func(s *store.Session) string
}

// envSecret are launch fields asked for by name that must never be
// exported; they get a clearer error than "unknown".
var envSecret = []string{"outcome_url", "lis_outcome_service_url", "sourcedid", "lis_result_sourcedid",
	"lineitem", "lineitems", "auth_state", "consumer_secret", "secret"}

func envFieldNames() []string {
	names := make([]string, len(envFields))
	for i, f := range envFields {
		names[i] = f.name
	}
	return names
}

func newEnvCmd(app *App) *cobra.Command {
	var user string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "env --user NAME",
		Short: "Print LTI_* variables from a user's newest launch (the hub's pre-spawn hook runs this)",
		Long: `Print LTI_<FIELD>=value for each launch field listed in the config's hub.env, taken
from the user's newest current session, so a notebook server can know its course
and assignment. The JupyterHub hook (` + "`ltigrade hub install`" + `) adds them to the
environment of every server it spawns.

Fields: ` + strings.Join(envFieldNames(), ", ") + `.
Default hub.env: ` + strings.Join(config.DefaultHubEnv, ", ") + `.
Secrets and grade targets (outcome URL, sourcedid, line items, auth_state) are
never available. Newlines and other control characters in values become spaces;
empty fields are left out. A user without any LTI launch gets no output and exit 0;
a database that does not exist is an error (exit 2) naming it, as it is for every
command that only reads the store.`,
		Example: `  ltigrade env --user alice
  ltigrade env --user alice --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			user = strings.ToLower(strings.TrimSpace(user))
			if user == "" {
				return usageErr("--user is required")
			}
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			fields, err := envSelection(cfg.Hub.Env)
			if err != nil {
				return err
			}
			st, err := app.Store()
			if err != nil {
				return err
			}
			sessions, err := st.UserSessions(app.Context(), user)
			if err != nil {
				return err
			}
			vars := map[string]string{}
			var keys []string
			if len(sessions) > 0 {
				s := &sessions[0] // newest first
				for _, f := range fields {
					if v := envValue(f.get(s)); v != "" {
						k := "LTI_" + strings.ToUpper(f.name)
						vars[k] = v
						keys = append(keys, k)
					}
				}
			}
			if asJSON {
				return printJSON(app.Out, vars)
			}
			for _, k := range keys {
				if _, err := fmt.Fprintf(app.Out, "%s=%s\n", k, vars[k]); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "JupyterHub user name")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object of the variables")
	return readsStore(app, cmd)
}

// envSelection resolves hub.env, refusing unknown and secret field names so
// a typo in the config is not silently an empty variable.
func envSelection(names []string) ([]envField, error) {
	var out []envField
	var unknown, secret []string
	for _, n := range names {
		i := slices.IndexFunc(envFields, func(f envField) bool { return f.name == n })
		switch {
		case i >= 0:
			out = append(out, envFields[i])
		case slices.Contains(envSecret, n):
			secret = append(secret, n)
		default:
			unknown = append(unknown, n)
		}
	}
	switch {
	case len(secret) > 0:
		return nil, usageErr("config: hub.env: %s may not be exported to user servers (secrets and grade targets stay in the store)", strings.Join(secret, ", "))
	case len(unknown) > 0:
		return nil, usageErr("config: hub.env: unknown field%s %s; known fields are %s",
			plural(len(unknown), "s"), strings.Join(unknown, ", "), strings.Join(envFieldNames(), ", "))
	}
	return out, nil
}

// envValue makes a launch value safe as one environment variable line:
// control characters (newlines, NUL...) become spaces.
func envValue(v string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, v))
}
