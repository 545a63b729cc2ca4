package ags

import (
	"context"
	"encoding/json"
	"errors"
)

// LineItemMediaType is the media type of one line item.
const LineItemMediaType = "application/vnd.ims.lis.v2.lineitem+json"

// LineItem reads one line item (GET lineitem, scope lineitem.readonly),
// for its label and maximum. It asks for the line item media type: edX
// negotiates Accept strictly and answers application/json alone with 406.
// Errors are *Error.
func (c *Client) LineItem(ctx context.Context, p Platform, lineitem string) (LineItem, error) {
	if c == nil {
		c = &Client{}
	}
	u, err := parseServiceURL(lineitem, "line item")
	if err != nil {
		return LineItem{}, &Error{Status: Rejected, Message: err.Error()}
	}
	var it LineItem
	pages := 0
	err = c.getPaged(ctx, p, ScopeLineItemReadOnly, u.String(), LineItemMediaType, func(data []byte) error {
		if pages++; pages > 1 {
			return errors.New("line item answered with a next page link")
		}
		if err := json.Unmarshal(data, &it); err != nil {
			return errors.New("line item is not a JSON line item")
		}
		return nil
	})
	return it, err
}
