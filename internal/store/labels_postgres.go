package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// UnlabeledLineItems implements Store.
func (s *Postgres) UnlabeledLineItems(ctx context.Context, checkedBefore time.Time, limit int) ([]LineItemRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT l.lineitem, MIN(l.platform), MIN(l.client_id), MIN(l.ags_scopes)
		FROM sessions s JOIN launches l ON l.id = s.current_launch_id
		LEFT JOIN lineitem_labels ll ON ll.lineitem = l.lineitem
		WHERE l.version = '1.3' AND l.resource_link_title = '' AND l.lineitem != ''
			AND (ll.lineitem IS NULL OR (ll.label = '' AND ll.checked_at < $1))
		GROUP BY l.lineitem ORDER BY l.lineitem LIMIT $2`, checkedBefore.UTC(), limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []LineItemRef
	for rows.Next() {
		var r LineItemRef
		var scopes string
		if err := rows.Scan(&r.LineItem, &r.Platform, &r.ClientID, &scopes); err != nil {
			return nil, s.wrap(err)
		}
		if scopes != "" {
			r.AGSScopes = strings.Split(scopes, ",")
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// SetLineItemLabels implements Store. A known label is never replaced by
// a failed lookup ("").
func (s *Postgres) SetLineItemLabels(ctx context.Context, labels []LineItemLabel) error {
	if len(labels) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		for _, l := range labels {
			if _, err := tx.Exec(ctx, `INSERT INTO lineitem_labels (lineitem, label, checked_at) VALUES ($1, $2, $3)
				ON CONFLICT (lineitem) DO UPDATE SET checked_at = excluded.checked_at,
					label = CASE WHEN excluded.label != '' THEN excluded.label ELSE lineitem_labels.label END`,
				pgText(l.LineItem), pgText(l.Label), l.CheckedAt.UTC()); err != nil {
				return err
			}
		}
		return nil
	})
}

// LineItemLabels implements Store.
func (s *Postgres) LineItemLabels(ctx context.Context, lineitems []string) (map[string]string, error) {
	out := map[string]string{}
	if len(lineitems) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT lineitem, label FROM lineitem_labels WHERE label != '' AND lineitem = ANY($1)`, lineitems)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, l string
		if err := rows.Scan(&u, &l); err != nil {
			return nil, s.wrap(err)
		}
		out[u] = l
	}
	return out, s.wrap(rows.Err())
}
