package service

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/store"
)

// login runs the hub's OAuth flow for role and returns a client holding
// the service's session cookie.
func (f *fixture) login(role string) *http.Client {
	f.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.srv.URL + f.prefix)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp, err = c.Get(f.srv.URL + f.prefix + "oauth_callback?code=" + role + "-code&state=" + url.QueryEscape(loc.Query().Get("state")))
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("login as %s: %d", role, resp.StatusCode)
	}
	return c
}

// upload posts the page's submit form with a notebook file.
func upload(t *testing.T, c *http.Client, target string, fields map[string]string, nb []byte) (int, string, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("notebook", "hw1.ipynb")
	fw.Write(nb)
	mw.Close()
	resp, err := c.Post(target, mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// The status page's submit form: a student sees a form for each of their
// launches a grader covers, and an upload through it is journaled as their
// submission for that notebook; without the page's CSRF token, or for a
// path none of their launches covers, nothing is journaled.
func TestPageSubmitForm(t *testing.T) {
	f := newFixture(t)
	cfg := f.service.Grader.Config
	cfg.Graders = append(cfg.Graders, config.Grader{Course: "DS100", Assignment: "hw1", Kind: "command",
		Command: []string{"true", "{notebook}"}})
	if cfg.Submit.MaxBytes == 0 {
		cfg.Submit.MaxBytes = 1 << 20
	}
	c := f.login("student")
	resp, err := c.Get(f.srv.URL + f.prefix)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.bodies = append(f.bodies, string(page))
	form := regexp.MustCompile(`(?s)<form method="post" action="submit"[^>]*>.*?name="_csrf" value="([^"]+)".*?name="path" value="([^"]+)"`).FindSubmatch(page)
	if form == nil {
		t.Fatalf("no submit form for alice's launch on her page:\n%s", page)
	}
	csrf, path := string(form[1]), string(form[2])
	if path != "course/hw1/hw1.ipynb" {
		t.Fatalf("the form submits %q, not the notebook alice's launch opened", path)
	}
	nb := []byte(`{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}`)
	target := f.srv.URL + f.prefix + "submit"
	subs := func() []store.Submission {
		t.Helper()
		got, err := f.st.ListSubmissions(context.Background(), store.SubmissionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	if code, _, _ := upload(t, c, target, map[string]string{"path": path}, nb); code != http.StatusForbidden {
		t.Errorf("upload without the CSRF token: %d, want 403", code)
	}
	code, _, body := upload(t, c, target, map[string]string{"path": "course/hw9/hw9.ipynb", "_csrf": csrf}, nb)
	f.bodies = append(f.bodies, body)
	if code < 400 || code >= 500 {
		t.Errorf("upload for a notebook no launch of hers covers: %d, want a 4xx", code)
	}
	if n := len(subs()); n != 0 {
		t.Fatalf("%d submissions journaled by refused uploads", n)
	}

	code, loc, body := upload(t, c, target, map[string]string{"path": path, "_csrf": csrf}, nb)
	f.bodies = append(f.bodies, body)
	if code != http.StatusSeeOther || !strings.Contains(loc, "submitted=") {
		t.Fatalf("upload: %d %q\n%s", code, loc, body)
	}
	got := subs()
	if len(got) != 1 || got[0].Username != "alice" || got[0].Path != path {
		t.Fatalf("journaled submissions: %+v", got)
	}
	if !strings.HasSuffix(loc, "submitted="+strconv.FormatInt(got[0].ID, 10)) {
		t.Errorf("redirect %q does not name submission %d", loc, got[0].ID)
	}
	f.noSecrets()
}
