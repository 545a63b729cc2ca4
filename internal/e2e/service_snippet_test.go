package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hubhook "github.com/ltigrade/ltigrade/internal/hub"
)

// The snippet of `hub install --service`, loaded by JupyterHub itself the
// way TLJH loads jupyterhub_config.d: it appends its service and extends
// the 'user' and 'server' roles where the main config already defines them
// (JupyterHub refuses a role defined twice), and keeps the services and
// roles it found.
func TestServiceSnippetKeepsExistingServicesAndRoles(t *testing.T) {
	env := loadHubEnv(t)
	dir := t.TempDir()
	src, err := hubhook.Render(hubhook.Options{Binary: "/usr/local/bin/ltigrade", Config: "/etc/ltigrade/config.toml",
		Timeout: 5 * time.Second, Service: &hubhook.ServiceOptions{Name: "ltigrade", URL: "http://127.0.0.1:10101"}})
	if err != nil {
		t.Fatal(err)
	}
	snippet := filepath.Join(dir, "ltigrade.py")
	if err := os.WriteFile(snippet, src, 0o644); err != nil {
		t.Fatal(err)
	}
	// JupyterHub's own scopes of the 'server' role (a server's
	// JUPYTERHUB_API_TOKEN), which an override replaces.
	serverDefault := []string{"users:activity!user", "access:servers!server", "access:services!service=ltigrade"}
	for _, c := range []struct {
		name, main   string
		wantServices []string
		wantUser     []string
		wantServer   []string
		wantRoles    int
	}{
		{"existing service and user role", `c.JupyterHub.services = [{"name": "grader-svc", "url": "http://127.0.0.1:9999"}]
c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=grader-svc"]}, {"name": "tas", "groups": ["ta"], "scopes": ["admin:users"]}]
`, []string{"grader-svc", "ltigrade"}, []string{"self", "access:services!service=grader-svc", "access:services!service=ltigrade"}, serverDefault, 3},
		{"existing server role", `c.JupyterHub.load_roles = [{"name": "server", "scopes": ["users:activity!user", "access:servers!server", "read:users:name!user"]}]
`, []string{"ltigrade"}, []string{"self", "access:services!service=ltigrade"},
			[]string{"users:activity!user", "access:servers!server", "read:users:name!user", "access:services!service=ltigrade"}, 2},
		{"nothing configured", "", []string{"ltigrade"}, []string{"self", "access:services!service=ltigrade"}, serverDefault, 2},
		{"loaded twice", "", []string{"ltigrade"}, []string{"self", "access:services!service=ltigrade"}, serverDefault, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			main := filepath.Join(t.TempDir(), "jupyterhub_config.py")
			load := "load_subconfig(" + jsonString(snippet) + ")\n"
			if c.name == "loaded twice" {
				load += load
			}
			if err := os.WriteFile(main, []byte(c.main+load), 0o644); err != nil {
				t.Fatal(err)
			}
			script := `import json, sys
from jupyterhub.app import JupyterHub
app = JupyterHub()
app.load_config_file(sys.argv[1])
print(json.dumps({"services": [s["name"] for s in app.services],
  "command": [s.get("command") for s in app.services if s["name"] == "ltigrade"],
  "no_confirm": [s.get("oauth_no_confirm") for s in app.services if s["name"] == "ltigrade"],
  "roles": app.load_roles}))
`
			out, err := exec.Command(env["HUB_PYTHON"], "-c", script, main).Output()
			if err != nil {
				t.Fatalf("loading the config with JupyterHub: %v\n%s", err, out)
			}
			var got struct {
				Services  []string
				Command   [][]string
				NoConfirm []bool `json:"no_confirm"`
				Roles     []struct {
					Name   string
					Scopes []string
				}
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if strings.Join(got.Services, ",") != strings.Join(c.wantServices, ",") {
				t.Errorf("services %v, want %v", got.Services, c.wantServices)
			}
			if len(got.Command) != 1 || strings.Join(got.Command[0], " ") != "/usr/local/bin/ltigrade --config /etc/ltigrade/config.toml serve" ||
				len(got.NoConfirm) != 1 || !got.NoConfirm[0] {
				t.Errorf("service command %v oauth_no_confirm %v", got.Command, got.NoConfirm)
			}
			if len(got.Roles) != c.wantRoles {
				t.Errorf("roles %+v, want %d", got.Roles, c.wantRoles)
			}
			for name, want := range map[string][]string{"user": c.wantUser, "server": c.wantServer} {
				n := 0
				for _, r := range got.Roles {
					if r.Name == name {
						n++
						if strings.Join(r.Scopes, ",") != strings.Join(want, ",") {
							t.Errorf("%s role scopes %v, want %v", name, r.Scopes, want)
						}
					}
				}
				if n != 1 {
					t.Errorf("%d %s roles, want exactly 1: %+v", n, name, got.Roles)
				}
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
