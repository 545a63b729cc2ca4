package ags

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// ScoreURL returns the score service URL of a line item: "/scores" inserted
// at the end of the path, before any query (Moodle line items carry
// "?type_id=N", which must stay in the query). A trailing slash is dropped
// first, so ".../lineitems/5/" gives ".../lineitems/5/scores".
func ScoreURL(lineitem string) (string, error) { return serviceURL(lineitem, "scores") }

// ResultsURL is ScoreURL for the result service ("/results").
func ResultsURL(lineitem string) (string, error) { return serviceURL(lineitem, "results") }

func serviceURL(lineitem, leaf string) (string, error) {
	u, err := parseServiceURL(lineitem, "line item")
	if err != nil {
		return "", err
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/" + leaf
	if u.RawPath != "" {
		u.RawPath = strings.TrimRight(u.RawPath, "/") + "/" + leaf
	}
	return u.String(), nil
}

// parseServiceURL accepts absolute https URLs, and http ones only for
// loopback hosts (local doubles): a bearer token must not cross a network
// in clear text. The fragment, never sent, is dropped.
func parseServiceURL(raw, what string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("invalid " + what + " url")
	}
	if u.User != nil {
		return nil, errors.New(what + " url must not carry credentials")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, errors.New(what + " url must use https")
		}
	default:
		return nil, errors.New(what + " url must use https")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
