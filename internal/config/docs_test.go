package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fileKeys walks rawFile's toml tags: every key the config file accepts,
// dotted ("hub.spool_dir"; entries of arrays of tables without an index,
// "lti11.consumers.key"). It is what Load decodes, so nothing can be added
// to the file format without showing up here.
func fileKeys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct:
				walk(ft, prefix+name+".")
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), prefix+name+".")
			default:
				keys = append(keys, prefix+name)
			}
		}
	}
	walk(reflect.TypeOf(rawFile{}), "")
	return keys
}

// docKeys reads the keys docs/configuration.md documents: a "### `[table]`"
// or "### `[[table]]`" heading opens a table (any other ### heading the top
// level), and each table row starting with a backquoted key documents that
// key of the current table.
func docKeys(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("^### `\\[\\[?([a-z0-9_.]+)\\]\\]?`")
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")
	var keys []string
	table, inKeys := "", false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			inKeys = strings.TrimSpace(line) == "## Keys"
		case inKeys && strings.HasPrefix(line, "### "):
			table = ""
			if m := heading.FindStringSubmatch(line); m != nil {
				table = m[1] + "."
			}
		case inKeys:
			if m := row.FindStringSubmatch(line); m != nil {
				keys = append(keys, table+m[1])
			}
		}
	}
	return keys
}

// TestDocsListEveryKey keeps docs/configuration.md and the "did you mean"
// list in step with the keys the config file accepts.
func TestDocsListEveryKey(t *testing.T) {
	want := fileKeys()
	if len(want) < 20 {
		t.Fatalf("found only %d keys in rawFile: %q", len(want), want)
	}
	docs := docKeys(t)
	for _, k := range want {
		if !slices.Contains(docs, k) {
			t.Errorf("docs/configuration.md does not document %s (a row \"| `%s` |\" under its table's \"### `[...]`\" heading in ## Keys)",
				k, k[strings.LastIndex(k, ".")+1:])
		}
		if !slices.Contains(knownKeys, k) {
			t.Errorf("knownKeys lacks %s, so a typo of it gets no \"did you mean\"", k)
		}
	}
	for _, k := range docs {
		if !slices.Contains(want, k) {
			t.Errorf("docs/configuration.md documents %s, which the config file does not accept", k)
		}
	}
	for _, k := range knownKeys {
		if !slices.Contains(want, k) {
			t.Errorf("knownKeys has %s, which the config file does not accept", k)
		}
	}
}
