// Package browsertest holds the self-test of the headless-browser harness
// (testenv.Browser): a real Chromium logs in to a small server, posts a form
// and reads the answer, so a broken harness fails here and not first in the
// status page tests that rely on it. It has no code outside its tests.
package browsertest
