package grade

import (
	"context"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Open edX's resource link claim has no title, so its sessions would show
// "-" for the assignment. The line item's label names it as well; ltigrade
// learns labels off the grading path (after sync's sends, and from
// `lineitems list`) and listings show a label where a title is missing.

const (
	labelBatch   = 20               // line items looked up per sync
	labelBudget  = 10 * time.Second // all of one sync's lookups
	labelTimeout = 3 * time.Second  // one lookup
	labelRetry   = 24 * time.Hour   // before a failed lookup is tried again
)

// learnLabels looks up the labels of up to labelBatch line items of
// untitled sessions. Best effort: failures are remembered (and retried a
// day later) and never fail the caller.
func (g *Local) learnLabels(ctx context.Context) {
	now := g.now()
	refs, err := g.Store.UnlabeledLineItems(ctx, now.Add(-labelRetry), labelBatch)
	if err != nil || len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, labelBudget)
	defer cancel()
	cl := g.AGSClient(1)
	var got []store.LineItemLabel
	for _, r := range refs {
		if ctx.Err() != nil {
			break
		}
		l := store.LineItemLabel{LineItem: r.LineItem, CheckedAt: now}
		// Reading a line item needs a line item scope; without one the
		// lookup would only collect refusals.
		if hasScope(r.AGSScopes, ags.ScopeLineItemReadOnly) || hasScope(r.AGSScopes, ags.ScopeLineItem) {
			if plat, err := g.Platform(r.Platform, r.ClientID); err == nil {
				one, stop := context.WithTimeout(ctx, labelTimeout)
				if it, err := cl.LineItem(one, plat, r.LineItem); err == nil {
					l.Label = it.Label
				}
				stop()
			}
		}
		got = append(got, l)
	}
	_ = g.Store.SetLineItemLabels(context.WithoutCancel(ctx), got)
}

// withLabels fills LineItemLabel on sessions whose resource link has no
// title, from the labels learnt so far.
func (g *Local) withLabels(ctx context.Context, ss []store.Session) {
	var urls []string
	for _, s := range ss {
		if s.ResourceLinkTitle == "" && s.LineItem != "" {
			urls = append(urls, s.LineItem)
		}
	}
	if len(urls) == 0 {
		return
	}
	labels, err := g.Store.LineItemLabels(ctx, urls)
	if err != nil {
		return
	}
	for i := range ss {
		if ss[i].ResourceLinkTitle == "" {
			ss[i].LineItemLabel = labels[ss[i].LineItem]
		}
	}
}

// keepLabels remembers the labels of a container's line items.
func (g *Local) keepLabels(ctx context.Context, items []ags.LineItem) {
	now := g.now()
	var ls []store.LineItemLabel
	for _, it := range items {
		if it.ID != "" && it.Label != "" {
			ls = append(ls, store.LineItemLabel{LineItem: it.ID, Label: it.Label, CheckedAt: now})
		}
	}
	_ = g.Store.SetLineItemLabels(ctx, ls)
}
