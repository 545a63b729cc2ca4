// Package lti11 speaks the tool side of LTI 1.1 Basic Outcomes: OAuth 1.0a
// HMAC-SHA1 request signing with the body-hash extension, the POX envelopes
// for replaceResult/readResult/deleteResult, and a client that sends one
// request and classifies what the LMS answered as sent, rejected or retry.
//
// Verification (Verify) lives here too so that our LMS simulator and tests
// can check signatures; an independent Python double (testdata/lmsdouble)
// verifies with oauthlib so a bug shared by our signer and verifier shows.
package lti11
