package lmsmsg

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"
)

// TraceWritten returns ctx with a trace that notes whether a request made
// with it was written, and a func reporting that. "Written" is counted
// from the moment the headers are done (WroteHeaders; WroteRequest for
// transports that report only that), even if the body then fails part way
// or the bytes still sat in a buffer: the LMS may have acted on such a
// request. A request for which it reports false never left (dial refused,
// TLS handshake failed, ctx ended first), so nobody can act on it.
func TraceWritten(ctx context.Context) (context.Context, func() bool) {
	var wrote atomic.Bool // the hooks run on the transport's goroutines
	trace := &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}
	return httptrace.WithClientTrace(ctx, trace), wrote.Load
}
