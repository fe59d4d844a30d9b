package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/sett-dev/sett/internal/testproc"
	"github.com/sett-dev/sett/server"
)

var updateTable = flag.Bool("update", false, "rewrite README.md's etcd flag table")

// implementedNotes add what an operator must know about flags sett
// implements (the rest behave as etcd's).
var implementedNotes = map[string]string{
	"data-dir":                     "default \"${name}.sett\"",
	"snapshot-count":               "entries between raft log snapshots",
	"peer-cert-allowed-cn":         "comma-separated; needs --peer-client-cert-auth, as etcd",
	"peer-cert-allowed-hostname":   "comma-separated; needs --peer-client-cert-auth, as etcd",
	"client-cert-allowed-hostname": "comma-separated; needs --client-cert-auth, as etcd",
	"logger":                       "only zap, as etcd 3.6",
	"log-outputs":                  "default and stderr: stderr; stdout; file paths (appended); several at once",
	"log-format":                   "json or console, zap's encodings",
	"enable-log-rotation":          "one file output, rotated by lumberjack as etcd",
	"log-rotation-config-json":     "lumberjack's maxsize, maxage, maxbackups, localtime, compress",
	"quota-backend-bytes":          "measured on Badger's files",
	"unsafe-no-fsync":              "Badger writes without sync",
	"auto-compaction-retention":    "a negative retention, and a periodic one under 10ns, are refused (etcd compacts away nearly all history in a busy loop, or crashes)",
}

const tableStart, tableEnd = "<!-- etcd-flags:start -->", "<!-- etcd-flags:end -->"

// etcdFlags are the flag names `etcd --help` lists.
func etcdFlags(t *testing.T) []string {
	out, _ := exec.Command(testproc.EnsureBinary(t, "etcd"), "--help").CombinedOutput()
	re := regexp.MustCompile(`(?m)^\s+--([a-z0-9][a-z0-9-]*)`)
	seen := map[string]bool{}
	var names []string
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	if len(names) < 100 {
		t.Fatalf("only %d flags in etcd --help:\n%s", len(names), out)
	}
	return names
}

// flagRow is what sett does with etcd flag name, or a problem.
func flagRow(fs *flag.FlagSet, name string) (what string, problem string) {
	f := fs.Lookup(name)
	if f == nil {
		return "", "unknown to sett"
	}
	switch v := f.Value.(type) {
	case refusedFlag:
		return "refused: " + v.reason, ""
	case ignoredFlag:
		n := ignoredNote(name)
		if n == "" {
			return "", "ignored without a documented reason (add it to ignoredNotes)"
		}
		return "accepted, no effect: " + n, ""
	}
	if n := implementedNotes[name]; n != "" {
		return "implemented; " + n, ""
	}
	return "implemented", ""
}

// Every etcd 3.6 flag is known to sett, implemented or documented, and
// README's table lists each (go test ./cmd/sett -run TestFlagTable -update
// regenerates it).
func TestFlagTable(t *testing.T) {
	o := &options{cfg: server.DefaultConfig()}
	fs := newFlagSet(o, io.Discard)
	var b bytes.Buffer
	b.WriteString(tableStart + "\n| etcd flag | sett |\n|---|---|\n")
	for _, name := range etcdFlags(t) {
		what, problem := flagRow(fs, name)
		if problem != "" {
			t.Errorf("etcd flag --%s: %s", name, problem)
			continue
		}
		b.WriteString("| `--" + name + "` | " + strings.ReplaceAll(what, "|", "\\|") + " |\n")
	}
	b.WriteString(tableEnd)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, tableStart), strings.Index(s, tableEnd)
	if *updateTable {
		if i < 0 || j < i {
			t.Fatalf("README.md has no %s … %s markers", tableStart, tableEnd)
		}
		s = s[:i] + b.String() + s[j+len(tableEnd):]
		if err := os.WriteFile("../../README.md", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if i < 0 || j < i || s[i:j+len(tableEnd)] != b.String() {
		t.Errorf("README.md's etcd flag table is out of date: go test ./cmd/sett -run TestFlagTable -update")
	}
}

// A refused flag fails the parse, from the command line and from ETCD_*
// variables; its off value passes.
func TestRefusedFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		ok   bool
	}{
		{args: []string{"--discovery-endpoints=http://d:2379"}},
		{args: []string{"--discovery=https://discovery.etcd.io/x"}},
		{args: []string{"--discovery-srv=example.com"}},
		{env: map[string]string{"ETCD_DISCOVERY_ENDPOINTS": "http://d:2379"}},
		{args: []string{"--discovery="}, ok: true},
	} {
		_, err := parseOptions(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if tc.ok != (err == nil) {
			t.Errorf("%v %v: err %v", tc.args, tc.env, err)
		}
		if err != nil && !strings.Contains(err.Error(), "is not supported") {
			t.Errorf("%v: unclear error %v", tc.args, err)
		}
	}
}
