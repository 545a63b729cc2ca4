package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/hubapi"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/metrics"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/sandbox"
	"github.com/ltigrade/ltigrade/internal/service"
	"github.com/ltigrade/ltigrade/internal/store"
)

// serviceSetup is where the service listens and how it reaches the hub,
// from the hub's JUPYTERHUB_* variables (managed service) or the config's
// [service] section (external service).
type serviceSetup struct {
	Listen, Prefix, Name string
	APIURL               string
	Token                config.Secret
	ClientID, Callback   string
	AuthorizeURL         string
	Secure               bool
}

func loadServiceSetup(app *App, cfg *config.Config, listen string) (*serviceSetup, error) {
	env := app.Getenv
	s := &serviceSetup{Name: cfg.Service.Name, Prefix: cfg.Service.Prefix, Listen: listen}
	if v := env("JUPYTERHUB_SERVICE_NAME"); v != "" {
		s.Name = v
	}
	if v := env("JUPYTERHUB_SERVICE_PREFIX"); v != "" {
		s.Prefix = strings.TrimRight(v, "/") + "/"
	}
	if s.Listen == "" {
		if v := env("JUPYTERHUB_SERVICE_URL"); v != "" {
			u, err := url.Parse(v)
			if err != nil || u.Host == "" {
				return nil, usageErr("$JUPYTERHUB_SERVICE_URL %q is not a URL", v)
			}
			s.Listen = u.Host
		} else {
			s.Listen = cfg.Service.Listen
		}
	}
	if s.Listen == "" {
		return nil, usageErr("no address to listen on: run it as a JupyterHub service (ltigrade hub install --service), or pass --listen ADDR (config service.listen)")
	}
	s.APIURL = firstNonEmpty(env("JUPYTERHUB_API_URL"), cfg.Service.HubAPIURL)
	if s.APIURL == "" {
		return nil, usageErr("no hub API URL: set $JUPYTERHUB_API_URL or service.hub_api_url (e.g. http://127.0.0.1:8081/hub/api)")
	}
	tok, err := cfg.HubAPIToken()
	if err != nil {
		return nil, withCode(ExitUsage, err, "a managed service gets $JUPYTERHUB_API_TOKEN from the hub; an external one needs service.hub_api_token_file with the token of the hub's services entry")
	}
	s.Token = tok
	s.ClientID = firstNonEmpty(env("JUPYTERHUB_CLIENT_ID"), "service-"+s.Name)
	s.Callback = firstNonEmpty(env("JUPYTERHUB_OAUTH_CALLBACK_URL"), s.Prefix+"oauth_callback")
	hub := firstNonEmpty(cfg.Service.HubPublicURL, env("JUPYTERHUB_PUBLIC_HUB_URL"), env("JUPYTERHUB_HOST"))
	base := firstNonEmpty(env("JUPYTERHUB_BASE_URL"), "/")
	if hub != "" {
		u, err := url.Parse(hub)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, usageErr("the hub's public URL %q is not an absolute URL", hub)
		}
		s.Secure = u.Scheme == "https"
		if u.Path != "" && u.Path != "/" {
			base = ""
		}
	}
	s.AuthorizeURL = strings.TrimRight(hub, "/") + "/" + strings.Trim(strings.TrimRight(base, "/")+"/hub/api/oauth2/authorize", "/")
	if hub == "" {
		s.AuthorizeURL = "/" + strings.TrimLeft(s.AuthorizeURL, "/")
	}
	return s, nil
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

func newServeCmd(app *App) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the grading service: graders score through the hub, students see their grades",
		Long: `Run ltigrade's grading service. Graders on any machine score through it with their
JupyterHub token (the remote CLI: LTIGRADE_URL), so they need neither the database nor
any LMS secret; students see their own launches and whether each grade was delivered.

As a JupyterHub-managed service (` + "`ltigrade hub install --service`" + `) it reads
JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_API_URL,
JUPYTERHUB_API_TOKEN, JUPYTERHUB_CLIENT_ID and JUPYTERHUB_OAUTH_CALLBACK_URL and answers
under /services/ltigrade/. As an external service (Kubernetes) give --listen and the
hub's API URL and token in the config ([service] hub_api_url, hub_api_token_file) or
the same environment variables.

Every request is checked with the hub: a token (Authorization: token ...) that carries
access:services!service=ltigrade, or a browser session from the hub's OAuth login.
Hub admins and [service] graders see everything and may score anyone; any other user
sees only their own sessions and passbacks and cannot score. The JSON API, under the
prefix: GET api/health, api/sessions, api/resolve, api/passbacks; POST api/scores,
api/sync; and, unauthenticated, GET .well-known/jwks.json (the LTI 1.3 public keys) and
healthz.

GET metrics is the Prometheus text format (passbacks by status, sends by outcome and
LMS host, queue age, last sync, spool backlog), for hub admins and graders, or for a
scraper with the bearer token in [service] metrics_token_file (mode 0600). Logs are
structured lines on stderr: JSON when stderr is not a terminal, text otherwise; one per
request, never a token or a secret. docs/service.md has the details.`,
		Example: `  ltigrade hub install --service      # the hub then starts it
  ltigrade serve --listen 0.0.0.0:10101   # external service
  curl -H "Authorization: Bearer $(cat /etc/ltigrade/metrics.token)" \
    http://127.0.0.1:10101/services/ltigrade/metrics   # what Prometheus scrapes`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			setup, err := loadServiceSetup(app, cfg, listen)
			if err != nil {
				return err
			}
			policy, err := service.NewPolicy(cfg.Service.Graders)
			if err != nil {
				return usageErr("%v", err)
			}
			app.manyQueries = true
			g, err := app.Local()
			if err != nil {
				return err
			}
			// A long-running service catches up with the spool before every
			// resolve, not once.
			g.CatchUp = g.CatchUpSpool
			log := newLogger(app)
			g.Warn = func(msg string) { log.Warn(msg) }
			hub := &hubapi.Client{APIURL: setup.APIURL}
			auth := &service.Auth{Hub: hub, Policy: policy, Service: setup.Name, Prefix: setup.Prefix,
				SecureCookies: setup.Secure,
				OAuth: &oauth2.Config{ClientID: setup.ClientID, ClientSecret: setup.Token.Reveal(), RedirectURL: setup.Callback,
					Endpoint: oauth2.Endpoint{AuthURL: setup.AuthorizeURL, TokenURL: strings.TrimRight(setup.APIURL, "/") + "/oauth2/token",
						AuthStyle: oauth2.AuthStyleInParams}}}
			srv := &service.Server{Grader: g, Auth: auth, Prefix: setup.Prefix, Log: log, Version: version(),
				JWKS: func() (keys.JWKSet, error) { return publicKeys(cfg) }}
			// Metrics: the outbox and spool as they are at each scrape, and
			// the sends this process makes.
			srv.Metrics = metrics.New(metrics.Source{Store: g.Store, SpoolDir: cfg.Hub.SpoolDir, Now: time.Now, Log: log})
			g.OnSend = func(p *store.Passback, o passback.Outcome) {
				srv.Metrics.ObserveSend(p, o)
				if o.Status != store.StatusSent {
					// p.Attempts counts this one (the claim did). The reason is
					// the LMS's answer, never the request: it carries no secret
					// of ours (the signature is in the request's header).
					log.Warn("score not delivered", "passback", p.ID, "outcome", o.Status, "host", passback.Host(p),
						"http_status", o.HTTPStatus, "attempt", p.Attempts, "reason", o.Message)
				}
			}
			tok, ok, err := cfg.MetricsToken()
			if err != nil {
				// A loose mode brings its own hint (chmod 600 FILE), which wins.
				return withCode(ExitUsage, err, "put only the token in "+cfg.Service.MetricsTokenFile+" (chmod 600), or fix service.metrics_token_file")
			}
			if ok {
				srv.MetricsToken = tok
			}
			// Server-side grading (ltigrade submit): workers grade journaled
			// submissions in the sandbox; without one, submitting is refused.
			switch {
			case len(cfg.Graders) == 0:
				g.GradingOff = "no [[graders]] are configured"
			default:
				if err := sandbox.Available(); err != nil {
					g.GradingOff = "the grading sandbox is unavailable here"
					log.Warn("server-side grading off", "reason", err.Error())
				} else {
					grading := &grade.Grading{G: g, Run: sandbox.Run, Workers: cfg.Submit.Workers, Log: log}
					g.OnSubmit = grading.Wake
					go grading.Serve(app.Context())
					log.Info("grading submissions", "workers", cfg.Submit.Workers, "graders", len(cfg.Graders))
				}
			}
			ln, err := net.Listen("tcp", setup.Listen)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			log.Info("serving", "listen", ln.Addr().String(), "prefix", setup.Prefix, "hub_api", config.RedactDSN(setup.APIURL),
				"graders", len(cfg.Service.Graders), "metrics_token", ok, "version", version())
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-app.Context().Done():
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				log.Info("stopping")
				if err := hs.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("stopped", "error", err.Error())
					return err
				}
				log.Info("stopped")
				return nil
			}
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (external service; config service.listen); a managed service uses $JUPYTERHUB_SERVICE_URL")
	return cmd
}

// newLogger logs structured lines to stderr: JSON when stderr is not a
// terminal (the hub's log, a container's), text otherwise.
func newLogger(app *App) *slog.Logger {
	if app.ErrIsTTY {
		return slog.New(slog.NewTextHandler(app.Err, nil))
	}
	return slog.New(slog.NewJSONHandler(app.Err, nil))
}

// publicKeys is the JWKS of every configured platform key, as `keys jwks`
// prints it.
func publicKeys(cfg *config.Config) (keys.JWKSet, error) {
	set := keys.JWKSet{Keys: []keys.JWK{}}
	seen := map[string]bool{}
	for _, p := range cfg.LTI13.Platforms {
		k, err := keys.LoadFile(p.PrivateKeyFile)
		if err != nil {
			return set, err
		}
		kid := p.KeyID
		if kid == "" {
			kid = k.KeyID()
		}
		if !seen[kid] {
			seen[kid] = true
			set.Keys = append(set.Keys, keys.PublicJWK(k.Public(), kid))
		}
	}
	return set, nil
}
