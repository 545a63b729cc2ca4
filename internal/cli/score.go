package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/score"
	"github.com/ltigrade/ltigrade/internal/store"
)

// outcomeTarget checks that the session can take a score: an LTI 1.1
// outcome service with a known consumer, or an LTI 1.3 AGS endpoint with a
// configured platform. A *config.SecretUnavailableError (see
// secretUnavailable) means the target is configured but its secret or key
// cannot be loaded right now: a score can still be journaled, and waits in
// the queue for the fix.
func outcomeTarget(app *App, s *store.Session) error {
	if s.Version == "1.3" {
		return agsTarget(app, s)
	}
	if s.OutcomeURL == "" || s.SourcedID == "" {
		return withCode(ExitNoSession, fmt.Errorf("launch %d of %s has no outcome service: the LMS did not ask for grades on %q", s.LaunchID, s.Username, s.ResourceLinkTitle),
			"make the LMS assignment graded (it then sends lis_outcome_service_url) and have the student launch it again")
	}
	cfg, err := app.Config()
	if err != nil {
		return err
	}
	if _, err := cfg.ConsumerSecret(s.Platform); err != nil {
		return consumerErr(err)
	}
	return nil
}

// consumerErr refuses a score the config can never sign (no such consumer)
// and passes on a secret that is only unavailable for now.
func consumerErr(err error) error {
	if _, ok := secretUnavailable(err); ok {
		return err
	}
	return withCode(ExitUsage, err, "") // the hint comes with the error's kind
}

// secretUnavailable says whether err is a configured consumer's secret or
// platform's key that cannot be loaded now (a loose mode, a missing file, an
// unset variable).
func secretUnavailable(err error) (*config.SecretUnavailableError, bool) {
	var su *config.SecretUnavailableError
	return su, errors.As(err, &su)
}

// warnSecretUnavailable tells why journaled scores cannot be sent yet and
// how to fix it.
func warnSecretUnavailable(app *App, su *config.SecretUnavailableError) {
	fmt.Fprintf(app.Err, "ltigrade: warning: %v; scores for it stay queued until that is fixed\n", su)
	if su.Hint != "" {
		fmt.Fprintf(app.Err, "hint: %s, then run `ltigrade sync`\n", su.Hint)
	}
}

func (app *App) secretFunc() func(key string) (string, error) {
	return func(key string) (string, error) {
		cfg, err := app.Config()
		if err != nil {
			return "", err
		}
		s, err := cfg.ConsumerSecret(key)
		if err != nil {
			return "", err
		}
		return s.Reveal(), nil
	}
}

func (app *App) httpClient() *http.Client {
	// TLS verification stays on: the default transport verifies. One idle
	// connection per sender keeps a sync from opening (and TLS-handshaking)
	// a new connection for most requests.
	t := http.DefaultTransport.(*http.Transport).Clone()
	if cfg, err := app.Config(); err == nil && cfg.Passback.Concurrency > t.MaxIdleConnsPerHost {
		t.MaxIdleConnsPerHost = cfg.Passback.Concurrency
	}
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, app.idleConns)
	return &http.Client{Transport: t}
}

type scoreOut struct {
	Passback *store.Passback `json:"passback"`
	Resolved *resolve.Result `json:"resolved,omitempty"`
	DryRun   bool            `json:"dry_run,omitempty"`
	Request  *dryRequest     `json:"request,omitempty"`
}

type dryRequest struct {
	URL         string `json:"url"`
	ConsumerKey string `json:"consumer_key"`
	SourcedID   string `json:"sourcedid"`
	Score       string `json:"score"`
	ResultData  string `json:"result_data,omitempty"`
	SubmittedAt string `json:"submitted_at,omitempty"`
	Body        string `json:"body"`
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func newScoreCmd(app *App) *cobra.Command {
	var o struct {
		user, comment, batch string
		launch               int64
		outOf                float64
		dryRun               bool
		asJSON               bool
		concurrency          int
	}
	cmd := &cobra.Command{
		Use:   "score NOTEBOOK SCORE",
		Short: "Send a notebook's score to the LMS (journaled first, retried until delivered)",
		Long: `Send SCORE for NOTEBOOK to the LMS assignment the notebook was launched from.

SCORE is a fraction (0.85), a percentage (85%) or points over a maximum (17/20, or
17 with --out-of 20). The score is written to ltigrade's journal before anything is
sent; then one attempt is made (with at most a short retry within passback.timeout).
If the LMS cannot be reached, or the consumer's secret (LTI 1.3: the key) cannot be read
right now (say its file mode is too loose), the score stays queued and ` + "`ltigrade sync`" + `
delivers it later. For each session the LMS always ends with the newest score.

With --batch FILE, every row (CSV with a header username,notebook,score[,out_of,comment],
or JSON lines with those keys) is resolved, all sendable rows are journaled in one
transaction, then sent with --concurrency at once; a host that answers with a rate limit
gets no more rows in this run (they stay queued for sync). A malformed row refuses the
whole batch (exit 2, nothing written). A summary goes to stderr; --json prints one
result per row.

Exit codes: 0 delivered, 3 no session, 4 ambiguous, 5 queued for retry,
6 rejected by the LMS, 2 invalid score or input. With --batch: 0 when every row was
sent (or superseded), else the most serious of 6, 4, 3, 5.`,
		Example: `  ltigrade score /home/jupyter-alice/materials/hw1/hw1.ipynb 0.85
  ltigrade score --batch grades.csv --json
  ltigrade score --user alice materials/hw1/hw1.ipynb 17/20 --comment "well done"
  ltigrade score --launch 42 hw1.ipynb 85% --dry-run --json`,
		Args: func(cmd *cobra.Command, a []string) error {
			if o.batch != "" {
				return args(cobra.NoArgs)(cmd, a)
			}
			return args(cobra.ExactArgs(2))(cmd, a)
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			if o.batch != "" {
				if o.user != "" || o.launch != 0 || o.outOf != 0 || o.comment != "" {
					return usageErr("--batch takes user, out_of and comment from its rows; drop --user, --launch, --out-of and --comment")
				}
				data, err := readInput(app, o.batch, batch.MaxInput)
				if err != nil {
					return err
				}
				rows, err := batch.Read(bytes.NewReader(data))
				if err != nil {
					return withCode(ExitUsage, err, "columns: username,notebook,score[,out_of,comment] (CSV with a header, or JSON lines)")
				}
				return runBatch(app, rows, batchOptions{DryRun: o.dryRun, JSON: o.asJSON, Concurrency: o.concurrency})
			}
			sc, err := score.Parse(a[1], o.outOf)
			if err != nil {
				return usageErr("invalid score: %v", err)
			}
			if len(o.comment) > 64<<10 {
				return usageErr("--comment is longer than 64 KiB")
			}
			sess, res, err := target(app, a[0], o.user, o.launch)
			if err != nil {
				return err
			}
			// A secret that cannot be loaded now does not lose the score: it
			// is journaled, stays queued (exit 5) and sync sends it after
			// the fix.
			if err := outcomeTarget(app, sess); err != nil {
				su, ok := secretUnavailable(err)
				if !ok {
					return err
				}
				warnSecretUnavailable(app, su)
			}
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			p, warn := buildPassback(sess, sc, o.outOf, o.comment, a[0], app.Now())
			if warn != "" {
				fmt.Fprintf(app.Err, "ltigrade: warning: %s\n", warn)
			}
			if o.dryRun {
				return printDryRun(app, p, res, o.asJSON)
			}
			st, err := app.Store()
			if err != nil {
				return err
			}
			if err := st.Enqueue(app.Context(), []*store.Passback{p}); err != nil {
				return err
			}
			sender, err := app.sender()
			if err != nil {
				return err
			}
			eng := &passback.Engine{Store: st, Timeout: cfg.Passback.Timeout, Concurrency: 1, Now: app.Now, Sender: sender}
			wait := min(cfg.Passback.Timeout, 5*time.Second)
			got, err := eng.SendNow(app.Context(), []int64{p.ID}, wait)
			if err != nil {
				return fmt.Errorf("score %s journaled as passback %d, but sending failed: %w", p.Score, p.ID, err)
			}
			final := got[0]
			return reportPassback(app, &final, res, o.asJSON)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.user, "user", "", "JupyterHub user; NOTEBOOK is then inside their notebook root")
	fl.Int64Var(&o.launch, "launch", 0, "send to this launch id (from ltigrade sessions list --all) instead of resolving NOTEBOOK")
	fl.Float64Var(&o.outOf, "out-of", 0, "SCORE is points out of this maximum")
	fl.StringVar(&o.comment, "comment", "", "comment for the student (sent where the LMS accepts it: Canvas resultData text)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "resolve and validate, print what would be sent, send and store nothing")
	fl.BoolVar(&o.asJSON, "json", false, "print JSON (with --batch: a summary and one result per row)")
	fl.StringVar(&o.batch, "batch", "", "send many scores: CSV (username,notebook,score[,out_of,comment]) or JSON lines from FILE, - for stdin")
	fl.IntVar(&o.concurrency, "concurrency", 0, "with --batch: scores in flight at once (default passback.concurrency)")
	return cmd
}

// buildPassback turns a score for a session into its outbox row; warn
// says what of the request the LMS cannot take.
func buildPassback(sess *store.Session, sc score.Score, outOf float64, comment, notebook string, now time.Time) (p *store.Passback, warn string) {
	p = &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username,
		Notebook: notebook, Score: sc.Text(), ScoreGiven: sc.Given, ScoreMax: sc.Maximum,
		Comment: comment, Protocol: "lti11", TargetURL: sess.OutcomeURL, SourcedID: sess.SourcedID,
		ConsumerKey: sess.Platform, CreatedAt: now}
	if sess.Version == "1.3" {
		// AGS: userId is the launch's sub; scoreMaximum is --out-of when
		// given, else 1; the comment always goes.
		p.Protocol, p.TargetURL, p.SourcedID = "ags", sess.LineItem, sess.LTIUserID
		p.ClientID, p.LineItems, p.ResourceLinkID = sess.ClientID, sess.LineItems, sess.ResourceLinkID
		if outOf <= 0 {
			p.ScoreGiven, p.ScoreMax = sc.Result, 1
		}
		return p, ""
	}
	if comment != "" {
		if contains(sess.ResultDataAccepted, "text") {
			p.ResultData = comment
		} else {
			warn = "the LMS did not advertise comments (resultData text) for this launch; sending the score without the comment"
		}
	}
	if sess.SubmittedAtAccepted {
		p.SubmittedAt = now.UTC().Format(time.RFC3339)
	}
	return p, warn
}

func printDryRun(app *App, p *store.Passback, res *resolve.Result, asJSON bool) error {
	if p.Protocol == "ags" {
		plat, err := app.platform(p.ConsumerKey, p.ClientID)
		if _, ok := secretUnavailable(err); ok {
			// The body does not depend on the key, only its signature does.
			plat, err = platformWithoutKey(app, p.ConsumerKey, p.ClientID)
		}
		if err != nil {
			return err
		}
		body, err := ags.ScoreJSON(plat, ags.Score{UserID: p.SourcedID, ScoreGiven: p.ScoreGiven, ScoreMaximum: p.ScoreMax,
			Comment: p.Comment, Timestamp: p.CreatedAt})
		if err != nil {
			return err
		}
		target := p.TargetURL
		if target != "" {
			if u, err := ags.ScoreURL(target); err == nil {
				target = u
			}
		} else {
			target = "(line item of resource link " + p.ResourceLinkID + " in " + p.LineItems + ")"
		}
		d := &dryRequest{URL: target, ConsumerKey: p.ConsumerKey, SourcedID: p.SourcedID, Score: p.Score, Body: string(body)}
		if asJSON {
			p.Status = "dry-run"
			return printJSON(app.Out, scoreOut{Passback: p, Resolved: res, DryRun: true, Request: d})
		}
		_, err = fmt.Fprintf(app.Out, "dry run: would post %s/%s for %s to %s (issuer %s, user %s)\n",
			fmtFloat(p.ScoreGiven), fmtFloat(p.ScoreMax), p.Username, target, p.ConsumerKey, p.SourcedID)
		return err
	}
	req := lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: p.SourcedID, Score: p.Score,
		ResultDataText: p.ResultData, MessageID: "dry-run"}
	if p.SubmittedAt != "" {
		t, _ := time.Parse(time.RFC3339, p.SubmittedAt)
		req.SubmittedAt = &t
	}
	body, err := lti11.BuildPOX(req)
	if err != nil {
		return err
	}
	d := &dryRequest{URL: p.TargetURL, ConsumerKey: p.ConsumerKey, SourcedID: p.SourcedID, Score: p.Score,
		ResultData: p.ResultData, SubmittedAt: p.SubmittedAt, Body: string(body)}
	if asJSON {
		p.Status = "dry-run"
		return printJSON(app.Out, scoreOut{Passback: p, Resolved: res, DryRun: true, Request: d})
	}
	_, err = fmt.Fprintf(app.Out, "dry run: would send %s for %s to %s (consumer %s, sourcedid %s)\n",
		p.Score, p.Username, p.TargetURL, p.ConsumerKey, p.SourcedID)
	return err
}

// platformWithoutKey is the registration of an issuer and client id as
// configured, without loading its key.
func platformWithoutKey(app *App, issuer, clientID string) (ags.Platform, error) {
	cfg, err := app.Config()
	if err != nil {
		return ags.Platform{}, err
	}
	p, err := cfg.Platform(issuer, clientID)
	if err != nil {
		return ags.Platform{}, err
	}
	return ags.Platform{Issuer: p.Issuer, ClientID: p.ClientID, TokenURL: p.TokenURL, Audience: p.Audience,
		KeyID: p.KeyID, Canvas: p.Canvas}, nil
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func reportPassback(app *App, p *store.Passback, res *resolve.Result, asJSON bool) error {
	code := ExitOK
	switch p.Status {
	// Superseded is success for the caller: the LMS will hold a newer score.
	case store.StatusSent, store.StatusSuperseded:
	case store.StatusRejected:
		code = ExitRejected
	default:
		code = ExitQueued
	}
	if asJSON {
		if err := printJSON(app.Out, scoreOut{Passback: p, Resolved: res}); err != nil {
			return err
		}
	} else {
		switch p.Status {
		case store.StatusSent:
			fmt.Fprintf(app.Out, "sent %s for %s (passback %d)\n", p.Score, p.Username, p.ID)
		case store.StatusRejected:
			fmt.Fprintf(app.Out, "rejected: the LMS refused %s for %s (passback %d): %s\n", p.Score, p.Username, p.ID, p.LastError)
		case store.StatusSuperseded:
			fmt.Fprintf(app.Out, "superseded: a newer score for %s was journaled meanwhile; %s (passback %d) will not be sent\n", p.Username, p.Score, p.ID)
		default:
			why := p.LastError
			if p.Attempts == 0 {
				why = "an earlier score of this session may still be in flight at the LMS"
			}
			when := ""
			// A row due at once (a local failure) waits only for sync.
			if p.NextAttemptAt != nil && p.NextAttemptAt.After(app.Now()) {
				when = ", next try after " + app.fmtTime(*p.NextAttemptAt)
			}
			fmt.Fprintf(app.Out, "queued: %s for %s is journaled as passback %d but not delivered yet (%s%s); `ltigrade sync` will deliver it\n",
				p.Score, p.Username, p.ID, dash(why), when)
		}
	}
	if code != ExitOK {
		return &silentExit{code: code}
	}
	return nil
}

func newResultCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "result",
		Short: "Read or delete the grade the LMS holds for a notebook's launch",
	}
	for _, op := range []lti11.Op{lti11.ReadResult, lti11.DeleteResult} {
		cmd.AddCommand(newResultOpCmd(app, op))
	}
	return cmd
}

func newResultOpCmd(app *App, op lti11.Op) *cobra.Command {
	var user string
	var launchID int64
	var asJSON bool
	name := strings.TrimSuffix(string(op), "Result")
	short := map[lti11.Op]string{lti11.ReadResult: "Ask the LMS which grade it holds (readResult)",
		lti11.DeleteResult: "Delete the grade the LMS holds (deleteResult)"}[op]
	cmd := &cobra.Command{
		Use:     name + " NOTEBOOK",
		Short:   short,
		Example: fmt.Sprintf("  ltigrade result %s /home/jupyter-alice/materials/hw1/hw1.ipynb\n  ltigrade result %s --launch 42 x --json", name, name),
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			sess, _, err := target(app, a[0], user, launchID)
			if err != nil {
				return err
			}
			if err := outcomeTarget(app, sess); err != nil {
				return err
			}
			if sess.Version == "1.3" {
				return runAGSResult(app, sess, op, asJSON)
			}
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			secret, err := cfg.ConsumerSecret(sess.Platform)
			if err != nil {
				return consumerErr(err)
			}
			ctx := app.Context()
			c := &lti11.Client{HTTP: &http.Client{Timeout: cfg.Passback.Timeout}}
			out := c.Do(ctx, sess.OutcomeURL, sess.Platform, secret.Reveal(), lti11.ResultRequest{Op: op, SourcedID: sess.SourcedID})
			type resultOut struct {
				SessionID int64  `json:"session_id"`
				LaunchID  int64  `json:"launch_id"`
				Username  string `json:"username"`
				Operation string `json:"operation"`
				Status    string `json:"status"`
				Score     string `json:"score,omitempty"`
				HasScore  bool   `json:"has_score"`
				Message   string `json:"message,omitempty"`
			}
			r := resultOut{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Operation: string(op), Message: out.Message}
			code := ExitOK
			switch out.Status {
			case lti11.Sent:
				r.Status = "success"
				if out.Response != nil {
					r.Score, r.HasScore = out.Response.Score, out.Response.HasScore
				}
			case lti11.Rejected:
				r.Status, code = "rejected", ExitRejected
			default:
				r.Status, code = "retry", ExitQueued
			}
			if asJSON {
				if err := printJSON(app.Out, r); err != nil {
					return err
				}
			} else {
				switch {
				case r.Status != "success":
					fmt.Fprintf(app.Out, "%s failed (%s): %s\n", op, r.Status, dash(r.Message))
				case op == lti11.DeleteResult:
					fmt.Fprintf(app.Out, "deleted the grade of %s (session %d)\n", sess.Username, sess.ID)
				case r.HasScore:
					fmt.Fprintf(app.Out, "%s\n", r.Score)
				default:
					fmt.Fprintf(app.Out, "no grade\n")
				}
			}
			if code != ExitOK {
				return &silentExit{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "JupyterHub user; NOTEBOOK is then inside their notebook root")
	cmd.Flags().Int64Var(&launchID, "launch", 0, "use this launch instead of resolving NOTEBOOK")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return readsStore(app, cmd)
}

func newPassbacksCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "passbacks", Short: "Inspect the outbox of journaled scores"}
	var f store.PassbackFilter
	var statuses []string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List journaled scores and their delivery status",
		Long: "Statuses: " + strings.Join(store.Statuses, ", ") + `.
"queued" selects pending, sending and retry together.`,
		Example: `  ltigrade passbacks list
  ltigrade passbacks list --status retry,rejected --json
  ltigrade passbacks list --user alice`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range statuses {
				for _, s := range strings.Split(s, ",") {
					switch {
					case s == "queued":
						f.Statuses = append(f.Statuses, store.StatusPending, store.StatusSending, store.StatusRetry)
					case contains(store.Statuses, s):
						f.Statuses = append(f.Statuses, strings.ToLower(s))
					default:
						return usageErr("unknown status %q: want one of %s, queued", s, strings.Join(store.Statuses, ", "))
					}
				}
			}
			st, err := app.Store()
			if err != nil {
				return err
			}
			list, err := st.ListPassbacks(app.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []store.Passback{}
				}
				return printJSON(app.Out, list)
			}
			var rows [][]string
			for _, p := range list {
				rows = append(rows, []string{strconv.FormatInt(p.ID, 10), p.Username, p.Notebook, p.Score, p.Status,
					strconv.Itoa(p.Attempts), app.fmtTime(p.CreatedAt), dash(p.LastError)})
			}
			return app.printTable([]string{"ID", "USER", "NOTEBOOK", "SCORE", "STATUS", "TRIES", "CREATED", "MESSAGE"}, rows)
		},
	}
	list.Flags().StringSliceVar(&statuses, "status", nil, "only these statuses (comma-separated; or queued)")
	list.Flags().StringVar(&f.Username, "user", "", "only this user")
	list.Flags().IntVar(&f.Limit, "limit", 0, "at most this many rows (0: all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(readsStore(app, list))
	return cmd
}
