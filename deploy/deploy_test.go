package deploy

// These tests check the deployment files without a cluster, a container
// engine or helm, none of which this machine has: every YAML document
// parses, the pieces name each other consistently (ports, paths, Secrets,
// volumes, images), the network policies let exactly the needed traffic
// through, the values pass the Zero to JupyterHub chart's schema, and the
// hook in hook-values.yaml is what `ltigrade hub hook` prints.

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite z2jh/hook-values.yaml from `ltigrade hub hook` (make deploy-values)")

// doc is one parsed YAML document and where it came from.
type doc struct {
	file string
	v    map[string]any
}

func (d doc) kind() string { return str(d.v["kind"]) }
func (d doc) name() string { return str(get(d.v, "metadata", "name")) }
func (d doc) String() string {
	return fmt.Sprintf("%s %s (%s)", d.kind(), d.name(), d.file)
}

// readDocs parses every document of a YAML file; a file without any is an
// error, as is a document that is not a mapping.
func readDocs(t *testing.T, path string) []doc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []doc
	for {
		var v any
		err := dec.Decode(&v)
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if v == nil {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: document %d is a %T, not a mapping", path, len(docs)+1, v)
		}
		docs = append(docs, doc{file: filepath.Base(path), v: m})
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// get walks maps by string keys and lists by int indices; nil when a step
// is missing.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func labels(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

// deployment is everything under deploy/, parsed once per test.
type deployment struct {
	manifests []doc          // k8s/*.yaml but kustomization.yaml and secrets.example.yaml
	secrets   []doc          // k8s/secrets.example.yaml
	kustom    map[string]any // k8s/kustomization.yaml
	values    map[string]any // z2jh/values.yaml
	hook      map[string]any // z2jh/hook-values.yaml
	config    map[string]any // config.toml of the ConfigMap ltigrade-config
	configRaw string
}

func load(t *testing.T) *deployment {
	t.Helper()
	d := &deployment{}
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no k8s/*.yaml: %v", err)
	}
	for _, f := range files {
		docs := readDocs(t, f)
		switch filepath.Base(f) {
		case "kustomization.yaml":
			d.kustom = docs[0].v
		case "secrets.example.yaml":
			d.secrets = docs
		default:
			d.manifests = append(d.manifests, docs...)
		}
	}
	if d.kustom == nil || d.secrets == nil {
		t.Fatal("k8s/kustomization.yaml or k8s/secrets.example.yaml missing")
	}
	d.values = readDocs(t, "z2jh/values.yaml")[0].v
	if _, err := os.Stat("z2jh/hook-values.yaml"); err == nil || !*update {
		d.hook = readDocs(t, "z2jh/hook-values.yaml")[0].v
	}
	cm := d.find(t, "ConfigMap", "ltigrade-config")
	d.configRaw = str(get(cm.v, "data", "config.toml"))
	var cfg map[string]any
	if _, err := toml.Decode(d.configRaw, &cfg); err != nil {
		t.Fatalf("config.toml of ConfigMap ltigrade-config: %v", err)
	}
	d.config = plain(cfg).(map[string]any)
	if len(list(get(d.config, "lti11", "consumers"))) == 0 || len(list(get(d.config, "lti13", "platforms"))) == 0 {
		t.Fatal("config.toml: the example has an LTI 1.1 consumer and an LTI 1.3 platform, which these tests check")
	}
	return d
}

// plain turns TOML's arrays of tables ([]map[string]any) into the []any
// YAML gives, so get and list walk both alike.
func plain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, y := range x {
			x[k] = plain(y)
		}
		return x
	case []map[string]any:
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = plain(y)
		}
		return out
	case []any:
		for i, y := range x {
			x[i] = plain(y)
		}
		return x
	}
	return v
}

func (d *deployment) find(t *testing.T, kind, name string) doc {
	t.Helper()
	for _, m := range d.manifests {
		if m.kind() == kind && m.name() == name {
			return m
		}
	}
	t.Fatalf("no %s %s in k8s/", kind, name)
	return doc{}
}

func (d *deployment) all(kind string) []doc {
	var out []doc
	for _, m := range d.manifests {
		if m.kind() == kind {
			out = append(out, m)
		}
	}
	return out
}

// The values of [service] and [hub] the rest must agree with.
func (d *deployment) serviceName() string {
	if n := str(get(d.config, "service", "name")); n != "" {
		return n
	}
	return "ltigrade"
}

func (d *deployment) prefix() string { return "/services/" + d.serviceName() + "/" }

// podSpec is the pod template of a Deployment or CronJob.
func podSpec(m doc) (meta, spec map[string]any) {
	var tpl any
	switch m.kind() {
	case "Deployment":
		tpl = get(m.v, "spec", "template")
	case "CronJob":
		tpl = get(m.v, "spec", "jobTemplate", "spec", "template")
	}
	meta, _ = get(tpl, "metadata").(map[string]any)
	spec, _ = get(tpl, "spec").(map[string]any)
	return meta, spec
}

func containers(spec any, keys ...string) []map[string]any {
	var out []map[string]any
	for _, k := range keys {
		for _, c := range list(get(spec, k)) {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// argv is a container's command and args, as the runtime joins them.
func argv(c map[string]any) []string {
	return append(strs(c["command"]), strs(c["args"])...)
}

// envRef is one container variable: a literal or a Secret key.
type envRef struct {
	value, secret, key string
	literal            bool
}

// envOf reads a container's env list.
func envOf(c map[string]any) map[string]envRef {
	out := map[string]envRef{}
	for _, e := range list(c["env"]) {
		name := str(get(e, "name"))
		out[name] = envFrom(get(e, "value"), get(e, "valueFrom"))
	}
	return out
}

// envDict reads the chart's dict form of extraEnv (NAME: value or NAME:
// {valueFrom: ...}).
func envDict(v any) map[string]envRef {
	out := map[string]envRef{}
	m, _ := v.(map[string]any)
	for name, x := range m {
		if sub, ok := x.(map[string]any); ok {
			out[name] = envFrom(sub["value"], sub["valueFrom"])
		} else {
			out[name] = envFrom(x, nil)
		}
	}
	return out
}

func envFrom(value, valueFrom any) envRef {
	if valueFrom != nil {
		return envRef{secret: str(get(valueFrom, "secretKeyRef", "name")), key: str(get(valueFrom, "secretKeyRef", "key"))}
	}
	return envRef{value: fmt.Sprint(value), literal: true}
}

func (d *deployment) ltigradeImage(t *testing.T) string {
	t.Helper()
	for _, im := range list(d.kustom["images"]) {
		if str(get(im, "name")) == "ltigrade" {
			return str(get(im, "newName")) + ":" + str(get(im, "newTag"))
		}
	}
	t.Fatal("kustomization.yaml sets no image for `ltigrade`")
	return ""
}

// TestManifests: every document is a Kubernetes object this deployment
// means, once, and kustomization.yaml applies every manifest file.
func TestManifests(t *testing.T) {
	d := load(t)
	api := map[string]string{
		"ConfigMap": "v1", "Secret": "v1", "Service": "v1", "PersistentVolumeClaim": "v1",
		"Deployment": "apps/v1", "CronJob": "batch/v1", "NetworkPolicy": "networking.k8s.io/v1",
	}
	seen := map[string]bool{}
	for _, m := range append(slices.Clone(d.manifests), d.secrets...) {
		want, ok := api[m.kind()]
		switch {
		case !ok:
			t.Errorf("%s: unexpected kind", m)
		case str(m.v["apiVersion"]) != want:
			t.Errorf("%s: apiVersion %q, want %q", m, m.v["apiVersion"], want)
		case m.name() == "":
			t.Errorf("%s: no metadata.name", m)
		case get(m.v, "metadata", "namespace") != nil:
			t.Errorf("%s: names a namespace; the hub's is chosen at apply time", m)
		}
		if seen[m.kind()+"/"+m.name()] {
			t.Errorf("%s twice", m)
		}
		seen[m.kind()+"/"+m.name()] = true
	}
	for _, m := range d.manifests {
		if m.kind() == "Secret" {
			t.Errorf("%s: Secrets belong in secrets.example.yaml, never applied with placeholders", m)
		}
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && b != "secrets.example.yaml" {
			want = append(want, b)
		}
	}
	got := strs(d.kustom["resources"])
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v, want every manifest %v", got, want)
	}
	// Every Deployment's selector selects its own pods (else apply fails),
	// and every Service selects some pod.
	for _, m := range d.all("Deployment") {
		meta, _ := podSpec(m)
		if !matches(labels(get(m.v, "spec", "selector", "matchLabels")), labels(meta["labels"])) {
			t.Errorf("%s: spec.selector does not match its pod template's labels", m)
		}
	}
	for _, s := range d.all("Service") {
		sel := labels(get(s.v, "spec", "selector"))
		found := false
		for _, m := range d.all("Deployment") {
			meta, _ := podSpec(m)
			found = found || (len(sel) > 0 && matches(sel, labels(meta["labels"])))
		}
		if !found {
			t.Errorf("%s selects no pod of a Deployment", s)
		}
	}
}

func matches(selector, lbls map[string]string) bool {
	for k, v := range selector {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

// TestService: the service listens where its Service, its probes, the hub's
// services entry and the user servers' $LTIGRADE_URL say, under the prefix
// /services/<name>/, with the hub token of that entry.
func TestService(t *testing.T) {
	d := load(t)
	name := d.serviceName()
	if name != "ltigrade" {
		t.Errorf("[service] name %q: the values, the Secret key and this test assume ltigrade", name)
	}
	if p := str(get(d.config, "service", "prefix")); p != "" && p != d.prefix() {
		t.Errorf("[service] prefix %q: the hub proxies %s to the service", p, d.prefix())
	}
	dep := d.find(t, "Deployment", name)
	meta, spec := podSpec(dep)
	cs := containers(spec, "containers")
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", dep, len(cs))
	}
	c := cs[0]
	args := argv(c)
	i := slices.Index(args, "serve")
	if i < 0 || !slices.Contains(args[:i], "--config") {
		t.Fatalf("%s runs %q, want ltigrade --config ... serve", dep, args)
	}
	listen := str(get(d.config, "service", "listen"))
	if j := slices.Index(args, "--listen"); j > i && j+1 < len(args) {
		listen = args[j+1]
	}
	_, portS, ok := strings.Cut(listen, ":")
	port, err := strconv.Atoi(portS)
	if !ok || err != nil {
		t.Fatalf("%s listens on %q, want HOST:PORT", dep, listen)
	}
	if h, _, _ := strings.Cut(listen, ":"); h != "0.0.0.0" && h != "" {
		t.Errorf("%s listens on %q: other pods cannot reach it", dep, listen)
	}
	named := map[string]int{}
	for _, p := range list(c["ports"]) {
		named[str(get(p, "name"))] = toInt(get(p, "containerPort"))
	}
	if named["http"] != port {
		t.Errorf("%s: container port http = %d, it listens on %d", dep, named["http"], port)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		path := str(get(c, probe, "httpGet", "path"))
		pp := get(c, probe, "httpGet", "port")
		if path != d.prefix()+"healthz" || resolvePort(pp, named) != port {
			t.Errorf("%s: %s GET %s on port %v, want %shealthz on %d", dep, probe, path, pp, d.prefix(), port)
		}
	}
	if labels(meta["labels"])["hub.jupyter.org/network-access-hub"] != "true" {
		t.Errorf("%s: pods lack the label hub.jupyter.org/network-access-hub=true the chart's hub policy admits", dep)
	}
	env := envOf(c)
	if tok := env["JUPYTERHUB_API_TOKEN"]; tok.secret != "hub" || tok.key != "hub.services."+name+".apiToken" {
		t.Errorf("%s: $JUPYTERHUB_API_TOKEN is %+v, want the chart's Secret hub, key hub.services.%s.apiToken", dep, tok, name)
	}

	svc := d.find(t, "Service", name)
	var svcPort int
	for _, p := range list(get(svc.v, "spec", "ports")) {
		if resolvePort(get(p, "targetPort"), named) == port {
			svcPort = toInt(get(p, "port"))
		}
	}
	if svcPort == 0 {
		t.Fatalf("%s: no port targets the container's %d", svc, port)
	}
	want := fmt.Sprintf("http://%s:%d", name, svcPort)
	entry := get(d.values, "hub", "services", name)
	if entry == nil {
		t.Fatalf("values.yaml: no hub.services.%s", name)
	}
	if u := str(get(entry, "url")); u != want {
		t.Errorf("hub.services.%s.url %q, want %q (the Service)", name, u, want)
	}
	if get(entry, "command") != nil {
		t.Errorf("hub.services.%s has a command: the hub would start it in its own pod", name)
	}
	if get(entry, "apiToken") != nil || get(entry, "api_token") != nil {
		t.Errorf("hub.services.%s sets its token in the values; leave it to the chart's Secret", name)
	}
	pub := strings.TrimRight(str(get(d.config, "service", "hub_public_url")), "/")
	if cb := str(get(entry, "oauth_redirect_uri")); pub == "" || cb != pub+d.prefix()+"oauth_callback" {
		t.Errorf("oauth_redirect_uri %q, want [service] hub_public_url %q + %soauth_callback", cb, pub, d.prefix())
	}
	if api := str(get(d.config, "service", "hub_api_url")); api != "http://hub:8081/hub/api" {
		t.Errorf("[service] hub_api_url %q, want the chart's Service hub: http://hub:8081/hub/api", api)
	}
	if u := envDict(get(d.values, "singleuser", "extraEnv"))["LTIGRADE_URL"]; u.value != want+d.prefix() {
		t.Errorf("singleuser.extraEnv.LTIGRADE_URL %+v, want %q", u, want+d.prefix())
	}
	access := "access:services!service=" + name
	for _, role := range []string{"user", "server"} {
		if !slices.Contains(strs(get(d.values, "hub", "loadRoles", role, "scopes")), access) {
			t.Errorf("hub.loadRoles.%s lacks %s", role, access)
		}
	}
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// resolvePort turns a named port into its number.
func resolvePort(v any, named map[string]int) int {
	if s, ok := v.(string); ok {
		if n, ok := named[s]; ok {
			return n
		}
	}
	return toInt(v)
}

// ltigradeContainers are every container that runs ltigrade against the
// database, with where it is: the service, the CronJob, the hub (whose hook
// inherits hub.extraEnv) and the hub's spool sidecar.
func (d *deployment) ltigradeContainers(t *testing.T) map[string]map[string]envRef {
	out := map[string]map[string]envRef{}
	for _, m := range append(d.all("Deployment"), d.all("CronJob")...) {
		_, spec := podSpec(m)
		for _, c := range containers(spec, "containers") {
			out[m.String()+" container "+str(c["name"])] = envOf(c)
		}
	}
	out["hub.extraEnv (the hook)"] = envDict(get(d.values, "hub", "extraEnv"))
	for _, c := range containers(d.values["hub"], "extraContainers") {
		out["hub.extraContainers "+str(c["name"])] = envOf(c)
	}
	return out
}

// TestSecrets: the database URL and the LMS secrets reach every ltigrade
// from Secrets the template defines, never as a literal; no URL of a
// database is written anywhere else.
func TestSecrets(t *testing.T) {
	d := load(t)
	keys := map[string]bool{}
	for _, s := range d.secrets {
		if s.kind() != "Secret" {
			t.Errorf("%s in secrets.example.yaml", s)
		}
		for k := range labels(get(s.v, "stringData")) {
			keys[s.name()+"/"+k] = true
		}
	}
	for _, k := range []string{"database", "database_password_file"} {
		if _, ok := d.config[k]; ok {
			t.Errorf("config.toml sets %s: the database comes from the Secret ltigrade-db as $LTIGRADE_DB", k)
		}
	}
	var secretEnvs []string
	for _, c := range list(get(d.config, "lti11", "consumers")) {
		if get(c, "secret") != nil || get(c, "secret_file") != nil {
			t.Errorf("consumer %v: use secret_env, filled from the Secret ltigrade-lti", get(c, "key"))
		}
		secretEnvs = append(secretEnvs, str(get(c, "secret_env")))
	}
	for where, env := range d.ltigradeContainers(t) {
		db, ok := env["LTIGRADE_DB"]
		switch {
		case !ok:
			t.Errorf("%s: no $LTIGRADE_DB", where)
		case db.literal:
			t.Errorf("%s: $LTIGRADE_DB is inline; take it from the Secret ltigrade-db", where)
		case !keys[db.secret+"/"+db.key]:
			t.Errorf("%s: $LTIGRADE_DB from %s/%s, which secrets.example.yaml does not define", where, db.secret, db.key)
		}
		for name, e := range env {
			if !e.literal && e.secret != "hub" && !keys[e.secret+"/"+e.key] {
				t.Errorf("%s: $%s from %s/%s, which secrets.example.yaml does not define", where, name, e.secret, e.key)
			}
			if e.literal && (strings.Contains(name, "SECRET") || strings.Contains(name, "TOKEN") || name == "PGPASSWORD") {
				t.Errorf("%s: $%s is inline", where, name)
			}
		}
	}
	// The pods that send scores sign with the consumer secrets.
	for _, m := range []doc{d.find(t, "Deployment", d.serviceName()), d.find(t, "CronJob", "ltigrade-sync")} {
		_, spec := podSpec(m)
		env := envOf(containers(spec, "containers")[0])
		for _, name := range secretEnvs {
			if e, ok := env[name]; !ok || e.literal {
				t.Errorf("%s: secret_env %s is not set from a Secret", m, name)
			}
		}
	}
	dsn := regexp.MustCompile(`(?i)postgres(ql)?://`)
	for _, m := range d.manifests {
		walkStrings(m.v, func(s string) {
			if dsn.MatchString(s) {
				t.Errorf("%s holds a database URL: %.60q", m, s)
			}
		})
	}
	for name, v := range map[string]any{"values.yaml": d.values, "hook-values.yaml": d.hook} {
		walkStrings(v, func(s string) {
			if dsn.MatchString(s) {
				t.Errorf("%s holds a database URL: %.60q", name, s)
			}
		})
	}
}

func walkStrings(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		f(x)
	case map[string]any:
		for _, y := range x {
			walkStrings(y, f)
		}
	case []any:
		for _, y := range x {
			walkStrings(y, f)
		}
	}
}

// TestSync: `ltigrade sync` runs as a CronJob with the shared config.
func TestSync(t *testing.T) {
	d := load(t)
	cj := d.find(t, "CronJob", "ltigrade-sync")
	if f := strings.Fields(str(get(cj.v, "spec", "schedule"))); len(f) != 5 {
		t.Errorf("%s: schedule %q is not five cron fields", cj, get(cj.v, "spec", "schedule"))
	}
	_, spec := podSpec(cj)
	cs := containers(spec, "containers")
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", cj, len(cs))
	}
	cmd := strings.Join(argv(cs[0]), " ")
	if !regexp.MustCompile(`(^|[ ;])ltigrade --config /etc/ltigrade/config\.toml sync(;| |$)`).MatchString(cmd) {
		t.Errorf("%s runs %q, want ltigrade --config /etc/ltigrade/config.toml sync", cj, cmd)
	}
	if mountOf(cs[0], spec, "/etc/ltigrade") != "configMap:ltigrade-config" {
		t.Errorf("%s: /etc/ltigrade is not the ConfigMap ltigrade-config", cj)
	}
	if r := str(get(spec, "restartPolicy")); r != "Never" && r != "OnFailure" {
		t.Errorf("%s: restartPolicy %q", cj, r)
	}
}

// mountOf names the volume a container has at path: "configMap:NAME",
// "secret:NAME", "pvc:NAME", "emptyDir:VOLUME", or "".
func mountOf(c map[string]any, spec any, path string) string {
	for _, m := range list(c["volumeMounts"]) {
		if str(get(m, "mountPath")) != path {
			continue
		}
		name := str(get(m, "name"))
		for _, v := range list(get(spec, "volumes")) {
			if str(get(v, "name")) != name {
				continue
			}
			switch {
			case get(v, "configMap") != nil:
				return "configMap:" + str(get(v, "configMap", "name"))
			case get(v, "secret") != nil:
				return "secret:" + str(get(v, "secret", "secretName"))
			case get(v, "persistentVolumeClaim") != nil:
				return "pvc:" + str(get(v, "persistentVolumeClaim", "claimName"))
			case get(v, "emptyDir") != nil:
				return "emptyDir:" + name
			}
		}
	}
	return ""
}

// TestLTIKeys: the LTI 1.3 key file the config names is the one the init
// container copies (mode 0600) from the Secret, in every pod that signs.
func TestLTIKeys(t *testing.T) {
	d := load(t)
	var keyFiles []string
	for _, p := range list(get(d.config, "lti13", "platforms")) {
		keyFiles = append(keyFiles, str(get(p, "private_key_file")))
	}
	for _, m := range []doc{d.find(t, "Deployment", d.serviceName()), d.find(t, "CronJob", "ltigrade-sync")} {
		_, spec := podSpec(m)
		main := containers(spec, "containers")[0]
		for _, kf := range keyFiles {
			dir := filepath.Dir(kf)
			ok := false
			for _, ic := range containers(spec, "initContainers") {
				a := argv(ic)
				if len(a) == 5 && a[0] == "install" && a[1] == "-m" && a[2] == "0600" && a[4] == kf &&
					strings.HasPrefix(mountOf(ic, spec, filepath.Dir(a[3])), "secret:") &&
					mountOf(ic, spec, dir) == mountOf(main, spec, dir) && strings.HasPrefix(mountOf(main, spec, dir), "emptyDir:") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: no init container installs %s 0600 from a Secret into a volume the main container mounts", m, kf)
			}
		}
	}
}

// TestHubPod: the hub gets the binary from ltigrade's image through an init
// container and a shared volume, the config from the ConfigMap, and its spool
// on the PersistentVolumeClaim; the sidecar records what the hook spooled.
func TestHubPod(t *testing.T) {
	d := load(t)
	image := d.ltigradeImage(t)
	hub := d.values["hub"]
	hubSpec := map[string]any{"volumes": get(hub, "extraVolumes")}
	hubC := map[string]any{"volumeMounts": get(hub, "extraVolumeMounts")}
	bin := hubBinary(t, d)
	var copier map[string]any
	for _, ic := range containers(hub, "initContainers") {
		if a := argv(ic); len(a) == 3 && a[0] == "cp" && a[2] == bin {
			copier = ic
		}
	}
	if copier == nil {
		t.Fatalf("hub.initContainers: none copies the binary to %s", bin)
	}
	if str(copier["image"]) != image {
		t.Errorf("hub init container image %q, want ltigrade's %q (kustomization.yaml)", copier["image"], image)
	}
	if src := argv(copier)[1]; src != imageBinary(t) {
		t.Errorf("the init container copies %s; the image has ltigrade at %s", src, imageBinary(t))
	}
	dir := filepath.Dir(bin)
	if v := mountOf(copier, hubSpec, dir); !strings.HasPrefix(v, "emptyDir:") || mountOf(hubC, hubSpec, dir) != v {
		t.Errorf("the hub container does not mount the init container's volume at %s (%q)", dir, v)
	}
	if mountOf(hubC, hubSpec, "/etc/ltigrade") != "configMap:ltigrade-config" {
		t.Error("the hub container does not mount the ConfigMap ltigrade-config at /etc/ltigrade")
	}
	// The spool is on the claim k8s/spool-pvc.yaml makes.
	spool := str(get(d.config, "hub", "spool_dir"))
	claim := ""
	for _, m := range list(get(hub, "extraVolumeMounts")) {
		if p := str(get(m, "mountPath")); spool == p || strings.HasPrefix(spool, p+"/") {
			claim = mountOf(hubC, hubSpec, p)
		}
	}
	if !strings.HasPrefix(claim, "pvc:") {
		t.Fatalf("hub.spool_dir %q is not on a PersistentVolumeClaim the hub mounts (%q)", spool, claim)
	}
	d.find(t, "PersistentVolumeClaim", strings.TrimPrefix(claim, "pvc:"))
	side := false
	for _, c := range containers(hub, "extraContainers") {
		cmd := strings.Join(argv(c), " ")
		if !strings.Contains(cmd, "ltigrade --config /etc/ltigrade/config.toml record --spool") {
			continue
		}
		side = true
		if str(c["image"]) != image {
			t.Errorf("sidecar %s image %q, want %q", c["name"], c["image"], image)
		}
		for _, p := range []string{"/etc/ltigrade", filepath.Dir(spool)} {
			if mountOf(c, hubSpec, p) != mountOf(hubC, hubSpec, p) {
				t.Errorf("sidecar %s does not mount %s as the hub does", c["name"], p)
			}
		}
	}
	if !side {
		t.Error("no hub.extraContainers runs ltigrade record --spool")
	}
}

// hubBinary is where the hub container finds ltigrade: the file the hook
// in hook-values.yaml runs.
func hubBinary(t *testing.T, d *deployment) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^LTIGRADE = (.*)$`).FindStringSubmatch(str(get(d.hook, "hub", "extraConfig", "ltigrade")))
	var bin string
	if m == nil || json.Unmarshal([]byte(m[1]), &bin) != nil {
		t.Fatal("hook-values.yaml: no LTIGRADE = \"...\" line in hub.extraConfig.ltigrade")
	}
	return bin
}

// The cluster's layout the hook is rendered for.
const (
	hubBinaryPath = "/opt/ltigrade/bin/ltigrade"
	hubConfigPath = "/etc/ltigrade/config.toml"
)

// imageBinary is where the Dockerfile puts ltigrade.
func imageBinary(t *testing.T) string {
	t.Helper()
	stages := dockerStages(t, "../Dockerfile")
	last := stages[len(stages)-1]
	for _, l := range last.lines {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "COPY" && strings.HasPrefix(f[1], "--from=") {
			return f[3]
		}
	}
	t.Fatal("Dockerfile: the last stage copies no binary from the build stage")
	return ""
}

// TestImages: every ltigrade image reference is the one image, the user image
// has the binary, and the Dockerfile builds a static binary with the go.mod
// Go version.
func TestImages(t *testing.T) {
	d := load(t)
	image := d.ltigradeImage(t)
	for _, m := range append(d.all("Deployment"), d.all("CronJob")...) {
		_, spec := podSpec(m)
		for _, c := range containers(spec, "initContainers", "containers") {
			if str(c["image"]) != "ltigrade" {
				t.Errorf("%s container %s image %q, want `ltigrade` (kustomization.yaml sets it)", m, c["name"], c["image"])
			}
		}
	}
	for _, c := range containers(d.values["hub"], "initContainers", "extraContainers") {
		if str(c["image"]) != image {
			t.Errorf("hub container %s image %q, want %q", c["name"], c["image"], image)
		}
	}

	user := dockerStages(t, "user-image/Dockerfile")
	if def := user[0].args["LTIGRADE_IMAGE"]; def != image {
		t.Errorf("user-image/Dockerfile: LTIGRADE_IMAGE defaults to %q, want %q", def, image)
	}
	copied := false
	for _, l := range user[len(user)-1].lines {
		f := strings.Fields(l)
		copied = copied || (len(f) == 4 && f[0] == "COPY" && f[1] == "--from=ltigrade" && f[2] == imageBinary(t) && f[3] == "/usr/local/bin/ltigrade")
	}
	if len(user) < 2 || user[len(user)-2].from != "${LTIGRADE_IMAGE} AS ltigrade" || !copied {
		t.Error("user-image/Dockerfile does not copy ltigrade from ${LTIGRADE_IMAGE} to /usr/local/bin")
	}
	if n := str(get(d.values, "singleuser", "image", "name")); n == "" || !strings.Contains(readFile(t, "user-image/Dockerfile"), n+":") {
		t.Errorf("singleuser.image.name %q is not the image user-image/Dockerfile says it builds", n)
	}

	stages := dockerStages(t, "../Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build and a runtime stage", len(stages))
	}
	gomod := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readFile(t, "../go.mod"))
	if gomod == nil || stages[0].args["GO_VERSION"] != gomod[1] {
		t.Errorf("Dockerfile GO_VERSION %q, go.mod wants go %v", stages[0].args["GO_VERSION"], gomod)
	}
	build := buildCommand(t)
	for _, want := range []string{"CGO_ENABLED=1", "osusergo", "netgo", "-extldflags -static", "./cmd/ltigrade"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile build command lacks %q: %s", want, build)
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type stage struct {
	from  string
	args  map[string]string // ARG defaults seen before the stage's FROM and in it
	lines []string          // instructions, continuation lines joined
}

func dockerStages(t *testing.T, name string) []stage {
	t.Helper()
	text := strings.ReplaceAll(readFile(t, name), "\\\n", " ")
	cur := &stage{args: map[string]string{}}
	var out []stage
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.Join(strings.Fields(l), " ")
		switch kw, rest, _ := strings.Cut(l, " "); strings.ToUpper(kw) {
		case "FROM":
			if cur.from != "" {
				out = append(out, *cur)
				cur = &stage{args: map[string]string{}}
			}
			cur.from = rest
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			cur.args[k] = v
		}
		cur.lines = append(cur.lines, l)
	}
	return append(out, *cur)
}

// buildCommand is the Dockerfile's `go build` command line.
func buildCommand(t *testing.T) string {
	t.Helper()
	for _, l := range dockerStages(t, "../Dockerfile")[0].lines {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			return strings.TrimPrefix(l, "RUN ")
		}
	}
	t.Fatal("Dockerfile: no RUN go build in the first stage")
	return ""
}

// TestImageBuild runs the Dockerfile's build command here (no engine: on
// this machine's Go and C toolchain) and checks the binary is static, so it
// runs in the hub image and any user image. It takes minutes on 2 cores the
// first time, so only with LTIGRADE_TEST_IMAGE_BUILD=1.
func TestImageBuild(t *testing.T) {
	if os.Getenv("LTIGRADE_TEST_IMAGE_BUILD") != "1" {
		t.Skip("set LTIGRADE_TEST_IMAGE_BUILD=1 to run the Dockerfile's go build (slow)")
	}
	out := filepath.Join(t.TempDir(), "ltigrade")
	cmdline := strings.ReplaceAll(strings.ReplaceAll(buildCommand(t), "${VERSION}", "deploytest"), "/out/ltigrade", out)
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, b)
	} else if len(bytes.TrimSpace(b)) > 0 {
		t.Errorf("the static build warns (glibc functions a static binary cannot use?):\n%s", b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if b, err := exec.Command(out, "--version").CombinedOutput(); err != nil || !strings.Contains(string(b), "deploytest") {
		t.Errorf("ltigrade --version: %v: %s", err, b)
	}
}

// TestHookValues: hook-values.yaml's hub.extraConfig.ltigrade is what
// `ltigrade hub hook` prints in the hub pod: run with the ConfigMap's config
// and $LTIGRADE_DB set as there, from /opt/ltigrade/bin, with the config at
// /etc/ltigrade/config.toml. The binary and config run from a temporary
// folder here, so those two lines are put in their cluster values; every
// other byte is the binary's. `make deploy-values` (-update) rewrites it.
func TestHookValues(t *testing.T) {
	d := load(t)
	bin := ltigradeBinary(t)
	cfg := d.writeConfig(t)
	var url string
	for _, s := range d.secrets {
		if s.name() == "ltigrade-db" {
			url = str(get(s.v, "stringData", "url"))
		}
	}
	cmd := exec.Command(bin, "--config", cfg, "hub", "hook")
	cmd.Env = cleanEnv("LTIGRADE_DB=" + url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ltigrade hub hook: %v\n%s", err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Errorf("ltigrade hub hook warns with the cluster's config:\n%s", stderr.Bytes())
	}
	snippet := string(out)
	for _, r := range [][2]any{
		{bin, hubBinaryPath},
		{[]string{"--config", cfg}, []string{"--config", hubConfigPath}},
	} {
		name := "LTIGRADE"
		if _, ok := r[0].([]string); ok {
			name = "LTIGRADE_ARGS"
		}
		here, _ := json.Marshal(r[0])
		there, _ := json.Marshal(r[1])
		line := name + " = " + string(here) + "\n"
		if n := strings.Count(snippet, "\n"+line); n != 1 {
			t.Fatalf("the snippet has %d lines %q, want 1:\n%s", n, line, snippet)
		}
		snippet = strings.Replace(snippet, "\n"+line, "\n"+name+" = "+string(there)+"\n", 1)
	}
	want := hookValuesYAML(snippet)
	if *update {
		if err := os.WriteFile("z2jh/hook-values.yaml", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("z2jh/hook-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("z2jh/hook-values.yaml is not what `ltigrade hub hook` prints; run make deploy-values")
	}
	// The YAML holds the snippet byte for byte (a block scalar keeps it).
	var v map[string]any
	if err := yaml.Unmarshal(got, &v); err != nil {
		t.Fatal(err)
	}
	if s := str(get(v, "hub", "extraConfig", "ltigrade")); s != snippet {
		t.Errorf("hub.extraConfig.ltigrade parses to something else than the snippet")
	}
	if get(d.values, "hub", "extraConfig", "ltigrade") != nil {
		t.Error("values.yaml sets hub.extraConfig.ltigrade too")
	}
	if !strings.HasPrefix(hubConfigPath, "/etc/ltigrade/") || filepath.Base(hubConfigPath) != "config.toml" {
		t.Fatal("hubConfigPath must be config.toml of the ConfigMap's mount")
	}
	if hubBinary(t, &deployment{hook: v}) != hubBinaryPath {
		t.Error("the hook does not run " + hubBinaryPath)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// ltigradeBinary builds ltigrade once for the tests that run it.
func ltigradeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ltigrade-deploytest-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "ltigrade")
		// Stamped "dev", the tag of the images the manifests name: the hook
		// keeps the version that wrote it, and a version taken from the
		// commit would make hook-values.yaml stale at every commit.
		build := exec.Command("go", "build", "-ldflags", "-X github.com/ltigrade/ltigrade/internal/cli.Version=dev", "-o", builtBin, "./cmd/ltigrade")
		build.Dir = ".."
		if b, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// writeConfig writes the ConfigMap's config.toml to a temporary file.
func (d *deployment) writeConfig(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(d.configRaw), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// cleanEnv is this process's environment without ltigrade's and the hub's
// variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "LTIGRADE_") && !strings.HasPrefix(e, "JUPYTERHUB_") && !strings.HasPrefix(e, "PG") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

// TestServeProbe runs the service's container command with the ConfigMap's
// config and its pod's variables (a SQLite file standing in for PostgreSQL,
// loopback for 0.0.0.0) and asks the probes' path: the config loads as the
// service reads it, and the probe path is one the binary answers without a
// login.
func TestServeProbe(t *testing.T) {
	d := load(t)
	bin := ltigradeBinary(t)
	cfg := d.writeConfig(t)
	// The metrics token, as the init container leaves it (0600) and the
	// Secret's placeholder says; the service refuses to start without it.
	tokenFile := str(get(d.config, "service", "metrics_token_file"))
	token := "placeholder-metrics-token"
	if tokenFile != "" {
		local := filepath.Join(t.TempDir(), "metrics.token")
		if err := os.WriteFile(local, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(d.configRaw, tokenFile, local)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, spec := podSpec(d.find(t, "Deployment", d.serviceName()))
	c := containers(spec, "containers")[0]
	args := argv(c)[1:]
	for i, a := range args {
		switch {
		case a == hubConfigPath:
			args[i] = cfg
		case i > 0 && args[i-1] == "--listen":
			args[i] = "127.0.0.1:0"
		}
	}
	env := cleanEnv("LTIGRADE_DB=" + filepath.Join(t.TempDir(), "ltigrade.db"))
	for name, e := range envOf(c) {
		if name != "LTIGRADE_DB" {
			env = append(env, name+"=placeholder-"+e.key) // values from Secrets
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// The service logs JSON lines; "serving" names the address it got.
	var addr string
	var logged []string
	sc := bufio.NewScanner(stderr)
	for addr == "" && sc.Scan() {
		logged = append(logged, sc.Text())
		var line struct{ Msg, Listen string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
			addr = line.Listen
		}
	}
	if addr == "" {
		t.Fatalf("ltigrade %v did not serve:\n%s", args, strings.Join(logged, "\n"))
	}
	go io.Copy(io.Discard, stderr)
	path := str(get(c, "readinessProbe", "httpGet", "path"))
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s %s", path, resp.Status, body)
	}
	// What Prometheus scrapes, by the pod's annotations: with the token
	// the exposition, without it 401 and no figure.
	meta, _ := podSpec(d.find(t, "Deployment", d.serviceName()))
	mpath := str(get(meta, "annotations", "prometheus.io/path"))
	for _, auth := range []string{"", "Bearer " + token} {
		req, _ := http.NewRequest("GET", "http://"+addr+mpath, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusUnauthorized
		if auth != "" {
			want = http.StatusOK
		}
		if resp.StatusCode != want || (auth == "") == strings.Contains(string(body), "ltigrade_passbacks{") {
			t.Errorf("GET %s with %q: %s\n%.300s", mpath, auth, resp.Status, body)
		}
	}
}

// TestMetricsScrape: the service pod's Prometheus annotations name its
// metrics path and port, the config's metrics token file is what an init
// container installs 0600 from a Secret of secrets.example.yaml, and the
// service's NetworkPolicy admits a scraper on that port.
func TestMetricsScrape(t *testing.T) {
	d := load(t)
	dep := d.find(t, "Deployment", d.serviceName())
	meta, spec := podSpec(dep)
	ann := func(k string) string { return str(get(meta, "annotations", "prometheus.io/"+k)) }
	main := containers(spec, "containers")[0]
	port := 0
	for _, p := range list(main["ports"]) {
		if str(get(p, "name")) == "http" {
			port = toInt(get(p, "containerPort"))
		}
	}
	if ann("scrape") != "true" || ann("path") != d.prefix()+"metrics" || ann("port") != fmt.Sprint(port) {
		t.Errorf("%s: annotations scrape %q path %q port %q, want true, %smetrics, %d", dep, ann("scrape"), ann("path"), ann("port"), d.prefix(), port)
	}
	tokenFile := str(get(d.config, "service", "metrics_token_file"))
	if tokenFile == "" {
		t.Fatalf("config.toml: no [service] metrics_token_file: a scraper would need a hub account")
	}
	var from string
	for _, ic := range containers(spec, "initContainers") {
		a := argv(ic)
		if len(a) == 5 && a[0] == "install" && a[2] == "0600" && a[4] == tokenFile &&
			mountOf(ic, spec, filepath.Dir(tokenFile)) == mountOf(main, spec, filepath.Dir(tokenFile)) {
			from = mountOf(ic, spec, filepath.Dir(a[3]))
		}
	}
	secret, ok := strings.CutPrefix(from, "secret:")
	if !ok {
		t.Fatalf("%s: no init container installs %s 0600 from a Secret into the service's volume", dep, tokenFile)
	}
	defined := false
	for _, s := range d.secrets {
		if s.name() == secret && get(s.v, "stringData", "token") != nil {
			defined = true
		}
	}
	if !defined {
		t.Errorf("the metrics token comes from Secret %s key token, which secrets.example.yaml does not define", secret)
	}
	np := d.find(t, "NetworkPolicy", d.serviceName())
	admits := false
	for _, rule := range list(get(np.v, "spec", "ingress")) {
		for _, f := range list(get(rule, "from")) {
			if strings.Contains(fmt.Sprint(get(f, "podSelector")), "prometheus") {
				for _, p := range list(get(rule, "ports")) {
					admits = admits || str(get(p, "port")) == "http"
				}
			}
		}
	}
	if !admits {
		t.Errorf("%s: no ingress rule admits a Prometheus pod on port http", np)
	}
}

// TestSyncCommand runs the CronJob's command line with the ConfigMap's
// config: with nothing queued it succeeds; with a stand-in ltigrade it
// passes exit codes on except 5 (still queued), which succeeds.
func TestSyncCommand(t *testing.T) {
	d := load(t)
	cfg := d.writeConfig(t)
	_, spec := podSpec(d.find(t, "CronJob", "ltigrade-sync"))
	a := argv(containers(spec, "containers")[0])
	if len(a) != 3 || a[0] != "sh" || a[1] != "-c" {
		t.Fatalf("the CronJob runs %q, want sh -c LINE", a)
	}
	line := strings.ReplaceAll(a[2], hubConfigPath, cfg)
	run := func(dir string) int {
		cmd := exec.Command("sh", "-c", line)
		cmd.Env = cleanEnv("PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"),
			"LTIGRADE_DB="+filepath.Join(t.TempDir(), "ltigrade.db"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return 0
	}
	realDir := t.TempDir()
	if err := os.Symlink(ltigradeBinary(t), filepath.Join(realDir, "ltigrade")); err != nil {
		t.Fatal(err)
	}
	if rc := run(realDir); rc != 0 {
		t.Errorf("sync with nothing queued: exit %d", rc)
	}
	for code, want := range map[int]int{0: 0, 5: 0, 1: 1, 2: 2, 6: 6} {
		fake := t.TempDir()
		script := fmt.Sprintf("#!/bin/sh\nexit %d\n", code)
		if err := os.WriteFile(filepath.Join(fake, "ltigrade"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if rc := run(fake); rc != want {
			t.Errorf("ltigrade sync exiting %d: the Job's command exits %d, want %d", code, rc, want)
		}
	}
}

// hookValuesYAML wraps the snippet in the values that put it in the hub.
func hookValuesYAML(snippet string) []byte {
	var b strings.Builder
	b.WriteString("# Generated by `make deploy-values` from `ltigrade hub hook` (deploy/deploy_test.go\n" +
		"# checks it is up to date); do not edit. The JupyterHub hook of ltigrade, for\n" +
		"# the hub pod laid out by values.yaml: the binary at " + hubBinaryPath + ", the\n" +
		"# config at " + hubConfigPath + ", the database from $LTIGRADE_DB.\n" +
		"hub:\n  extraConfig:\n    ltigrade: |\n")
	for _, l := range strings.SplitAfter(snippet, "\n") {
		if l == "" {
			continue
		}
		if l != "\n" {
			b.WriteString("      ")
		}
		b.WriteString(l)
	}
	return []byte(b.String())
}

// TestValuesSchema: the values pass the chart's schema (as helm checks
// before rendering): known keys only, the right types.
func TestValuesSchema(t *testing.T) {
	schema := readDocs(t, "testdata/z2jh-values.schema.yaml")[0].v
	for _, f := range []string{"z2jh/values.yaml", "z2jh/hook-values.yaml"} {
		for _, err := range validate(schema, readDocs(t, f)[0].v, "") {
			t.Errorf("%s: %s", f, err)
		}
	}
}

// validate checks v against the subset of JSON Schema the chart's schema
// uses for structure: type, properties, additionalProperties,
// patternProperties, items, enum. (required is left out: values files are
// merged with the chart's defaults.)
func validate(s map[string]any, v any, path string) []string {
	var errs []string
	if ts := schemaTypes(s["type"]); len(ts) > 0 && !slices.Contains(ts, jsonType(v)) &&
		!(jsonType(v) == "integer" && slices.Contains(ts, "number")) {
		return []string{fmt.Sprintf("%s: %s, want %v", path, jsonType(v), ts)}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		errs = append(errs, fmt.Sprintf("%s: %v not in %v", path, v, enum))
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		pats, _ := s["patternProperties"].(map[string]any)
		for k, sub := range x {
			p := path + "." + k
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(ps, sub, p)...)
				continue
			}
			matched := false
			for pat, ps := range pats {
				if regexp.MustCompile(pat).MatchString(k) {
					matched = true
					errs = append(errs, validate(ps.(map[string]any), sub, p)...)
				}
			}
			if matched {
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, p+": not a key the chart knows")
				}
			case map[string]any:
				errs = append(errs, validate(ap, sub, p)...)
			}
		}
	case []any:
		if is, ok := s["items"].(map[string]any); ok {
			for i, sub := range x {
				errs = append(errs, validate(is, sub, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func schemaTypes(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	return strs(v)
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64, uint64:
		return "integer"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// TestKustomize builds deploy/k8s with kubectl's kustomize, which needs no
// cluster, and checks the image is set in every pod.
func TestKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl here")
	}
	out, err := exec.Command(kubectl, "kustomize", "k8s").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize k8s: %v", err)
	}
	d := load(t)
	image := d.ltigradeImage(t)
	n := 0
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			break
		}
		_, spec := podSpec(doc{v: v})
		for _, c := range containers(spec, "initContainers", "containers") {
			n++
			if str(c["image"]) != image {
				t.Errorf("%s container %s: image %q after kustomize, want %q", get(v, "metadata", "name"), c["name"], c["image"], image)
			}
		}
	}
	if n == 0 {
		t.Error("kustomize output has no containers")
	}
}

// A pod, or an address outside the cluster, for the policy checks.
type endpoint struct {
	name     string
	ns       string
	nsLabels map[string]string
	labels   map[string]string
	ports    map[string]int // named container ports
	ip       string         // outside the cluster: an address
}

type policy struct {
	name    string
	ns      string
	sel     map[string]string
	types   []string
	ingress []any
	egress  []any
}

func policyOf(name string, spec any) policy {
	p := policy{name: name, ns: "jhub", sel: labels(get(spec, "podSelector", "matchLabels")), types: strs(get(spec, "policyTypes"))}
	p.ingress = list(get(spec, "ingress"))
	p.egress = list(get(spec, "egress"))
	return p
}

// allowed says whether traffic from src to dst:port/proto passes every
// policy: egress of src's policies and ingress of dst's. A pod no policy
// selects for a direction is not isolated in it.
func allowed(pols []policy, src, dst endpoint, port int, proto string) bool {
	return direction(pols, src, "Egress", dst, port, proto) && direction(pols, dst, "Ingress", src, port, proto)
}

func direction(pols []policy, self endpoint, typ string, peer endpoint, port int, proto string) bool {
	if self.ip != "" {
		return true // outside: not ours to police
	}
	isolated := false
	for _, p := range pols {
		if p.ns != self.ns || !matches(p.sel, self.labels) || !slices.Contains(p.types, typ) {
			continue
		}
		isolated = true
		rules, key, portsOf := p.egress, "to", peer
		if typ == "Ingress" {
			rules, key, portsOf = p.ingress, "from", self
		}
		for _, r := range rules {
			if portOK(get(r, "ports"), port, proto, portsOf.ports) && peerOK(get(r, key), peer, p.ns) {
				return true
			}
		}
	}
	return !isolated
}

func portOK(ports any, port int, proto string, named map[string]int) bool {
	if ports == nil {
		return true
	}
	for _, p := range list(ports) {
		pr := str(get(p, "protocol"))
		if pr == "" {
			pr = "TCP"
		}
		if pr == proto && resolvePort(get(p, "port"), named) == port {
			return true
		}
	}
	return false
}

func peerOK(peers any, e endpoint, ns string) bool {
	if peers == nil {
		return true
	}
	for _, p := range list(peers) {
		if cidr := str(get(p, "ipBlock", "cidr")); cidr != "" {
			if e.ip == "" {
				continue
			}
			addr := netip.MustParseAddr(e.ip)
			if !netip.MustParsePrefix(cidr).Contains(addr) {
				continue
			}
			excluded := false
			for _, ex := range strs(get(p, "ipBlock", "except")) {
				excluded = excluded || netip.MustParsePrefix(ex).Contains(addr)
			}
			if !excluded {
				return true
			}
			continue
		}
		if e.ip != "" {
			continue
		}
		nsSel, hasNS := get(p, "namespaceSelector").(map[string]any)
		podSel, hasPod := get(p, "podSelector").(map[string]any)
		nsOK := (!hasNS && e.ns == ns) || (hasNS && matches(labels(get(nsSel, "matchLabels")), e.nsLabels))
		podOK := !hasPod || matches(labels(get(podSel, "matchLabels")), e.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

// TestNetworkPolicies: with ltigrade's policies, the chart's (with the
// values' extra rules, and its hub rule admitting labelled pods) and
// privateIPs off, exactly the traffic ltigrade needs passes.
func TestNetworkPolicies(t *testing.T) {
	d := load(t)
	var pols []policy
	for _, m := range d.all("NetworkPolicy") {
		pols = append(pols, policyOf(m.name(), m.v["spec"]))
	}
	chart := func(component string, egress any, ingress []any) {
		pols = append(pols, policy{name: "chart " + component, ns: "jhub",
			sel:   map[string]string{"app": "jupyterhub", "component": component},
			types: []string{"Ingress", "Egress"}, egress: list(egress), ingress: ingress})
	}
	// The chart's own rule: pods labelled network-access-hub --> hub:8081.
	hubIngress := []any{map[string]any{"ports": []any{map[string]any{"port": 8081}},
		"from": []any{map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"hub.jupyter.org/network-access-hub": "true"}}}}}}
	chart("hub", get(d.values, "hub", "networkPolicy", "egress"), hubIngress)
	chart("proxy", get(d.values, "proxy", "chp", "networkPolicy", "egress"), nil)
	chart("singleuser-server", get(d.values, "singleuser", "networkPolicy", "egress"), nil)

	ns := func(n string) map[string]string { return map[string]string{"kubernetes.io/metadata.name": n} }
	pod := func(name string, m doc) endpoint {
		meta, spec := podSpec(m)
		e := endpoint{name: name, ns: "jhub", nsLabels: ns("jhub"), labels: labels(meta["labels"]), ports: map[string]int{}}
		for _, c := range containers(spec, "containers") {
			for _, p := range list(c["ports"]) {
				e.ports[str(get(p, "name"))] = toInt(get(p, "containerPort"))
			}
		}
		return e
	}
	z2jh := func(component string) endpoint {
		return endpoint{name: component, ns: "jhub", nsLabels: ns("jhub"), labels: map[string]string{"app": "jupyterhub", "component": component, "release": "jhub"}}
	}
	svc := pod("service", d.find(t, "Deployment", d.serviceName()))
	syncPod := pod("sync", d.find(t, "CronJob", "ltigrade-sync"))
	hub, proxy, user := z2jh("hub"), z2jh("proxy"), z2jh("singleuser-server")
	// The example's database: namespace ltigrade-db, label
	// app.kubernetes.io/name=postgresql (replace it everywhere alike).
	pg := endpoint{name: "postgresql", ns: "ltigrade-db", nsLabels: ns("ltigrade-db"), labels: map[string]string{"app.kubernetes.io/name": "postgresql"}}
	dns := endpoint{name: "kube-dns", ns: "kube-system", nsLabels: ns("kube-system"), labels: map[string]string{"k8s-app": "kube-dns"}}
	lms := endpoint{name: "LMS", ip: "198.51.100.7"}
	other := endpoint{name: "another pod", ns: "jhub", nsLabels: ns("jhub"), labels: map[string]string{"app": "something-else"}}
	elsewhere := endpoint{name: "a pod of another namespace", ns: "other", nsLabels: ns("other"), labels: svc.labels}

	// One database: the rules to port 5432 name the same destination.
	dbRules := map[string]any{}
	for _, p := range pols {
		for _, r := range p.egress {
			if portOK(get(r, "ports"), 5432, "TCP", nil) && get(r, "ports") != nil {
				dbRules[p.name] = get(r, "to")
			}
		}
	}
	for _, who := range []string{"ltigrade", "ltigrade-sync", "chart hub"} {
		if !reflect.DeepEqual(dbRules[who], dbRules["ltigrade"]) || dbRules[who] == nil {
			t.Errorf("the PostgreSQL destination of %s is %v, of ltigrade %v: make them the same", who, dbRules[who], dbRules["ltigrade"])
		}
	}

	port := svc.ports["http"]
	for _, c := range []struct {
		src, dst endpoint
		port     int
		proto    string
		want     bool
	}{
		{proxy, svc, port, "TCP", true},
		{hub, svc, port, "TCP", true},
		{user, svc, port, "TCP", true},
		{svc, hub, 8081, "TCP", true},
		{svc, pg, 5432, "TCP", true},
		{svc, lms, 443, "TCP", true},
		{svc, dns, 53, "UDP", true},
		{svc, dns, 53, "TCP", true},
		{hub, pg, 5432, "TCP", true},
		{syncPod, pg, 5432, "TCP", true},
		{syncPod, lms, 443, "TCP", true},
		{syncPod, dns, 53, "UDP", true},

		{other, svc, port, "TCP", false},
		{elsewhere, svc, port, "TCP", false},
		{proxy, svc, 8081, "TCP", false},
		{svc, endpoint{name: "a private address", ip: "10.1.2.3"}, 443, "TCP", false},
		{svc, endpoint{name: "the cloud metadata server", ip: "169.254.169.254"}, 80, "TCP", false},
		{svc, lms, 80, "TCP", false},
		{svc, user, 8888, "TCP", false},
		{proxy, syncPod, port, "TCP", false},
		{hub, syncPod, port, "TCP", false},
		{syncPod, hub, 8081, "TCP", false},
	} {
		if got := allowed(pols, c.src, c.dst, c.port, c.proto); got != c.want {
			t.Errorf("%s --> %s:%d/%s: allowed %v, want %v", c.src.name, c.dst.name, c.port, c.proto, got, c.want)
		}
	}
}
