package store

import (
	"context"
	"strings"
	"time"
)

// UnlabeledLineItems implements Store.
func (s *SQLite) UnlabeledLineItems(ctx context.Context, checkedBefore time.Time, limit int) ([]LineItemRef, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT l.lineitem, MIN(l.platform), MIN(l.client_id), MIN(l.ags_scopes)
		FROM sessions s JOIN launches l ON l.id = s.current_launch_id
		LEFT JOIN lineitem_labels ll ON ll.lineitem = l.lineitem
		WHERE l.version = '1.3' AND l.resource_link_title = '' AND l.lineitem != ''
			AND (ll.lineitem IS NULL OR (ll.label = '' AND ll.checked_at < ?))
		GROUP BY l.lineitem ORDER BY l.lineitem LIMIT ?`, micros(checkedBefore), limit)
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
func (s *SQLite) SetLineItemLabels(ctx context.Context, labels []LineItemLabel) error {
	if len(labels) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	for _, l := range labels {
		if _, err := tx.ExecContext(ctx, `INSERT INTO lineitem_labels (lineitem, label, checked_at) VALUES (?, ?, ?)
			ON CONFLICT (lineitem) DO UPDATE SET checked_at = excluded.checked_at,
				label = CASE WHEN excluded.label != '' THEN excluded.label ELSE lineitem_labels.label END`,
			l.LineItem, l.Label, micros(l.CheckedAt)); err != nil {
			return s.wrap(err)
		}
	}
	return s.wrap(tx.Commit())
}

// LineItemLabels implements Store.
func (s *SQLite) LineItemLabels(ctx context.Context, lineitems []string) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(lineitems); start += 500 {
		chunk := lineitems[start:min(start+500, len(lineitems))]
		args := make([]any, len(chunk))
		for i, u := range chunk {
			args[i] = u
		}
		rows, err := s.db.QueryContext(ctx, `SELECT lineitem, label FROM lineitem_labels WHERE label != '' AND lineitem IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, s.wrap(err)
		}
		for rows.Next() {
			var u, l string
			if err := rows.Scan(&u, &l); err != nil {
				rows.Close()
				return nil, s.wrap(err)
			}
			out[u] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err)
		}
	}
	return out, nil
}
