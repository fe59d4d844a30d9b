package compat

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

var compatTable = flag.String("compat.table", "", "write the etcdctl compatibility matrix (Markdown) into this file, between the markers")

// ctlOutcomes collects every etcdctl case compared with etcd in this run.
var ctlOutcomes struct {
	sync.Mutex
	rows map[string]*ctlRow
}

type ctlRow struct {
	cases, same int
	flags       map[string]bool
}

// subcommands that take a second word (etcdctl lease grant, …).
var twoWordCommands = map[string]bool{"lease": true, "endpoint": true, "snapshot": true, "alarm": true, "member": true, "check": true, "user": true, "role": true, "auth": true, "downgrade": true}

// recordCtl notes one etcdctl case and whether sett's output was etcd's.
func recordCtl(args []string, same bool) {
	var words []string
	flags := map[string]bool{}
	for _, a := range args {
		if a == "--" || (len(a) > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9') {
			continue // end of flags, or a negative number
		}
		if strings.HasPrefix(a, "-") {
			if name, _, _ := strings.Cut(a, "="); name != "--endpoints" {
				flags[name] = true
			}
			continue
		}
		if len(words) == 0 || (len(words) == 1 && twoWordCommands[words[0]]) {
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		return
	}
	cmd := strings.Join(words, " ")
	ctlOutcomes.Lock()
	defer ctlOutcomes.Unlock()
	if ctlOutcomes.rows == nil {
		ctlOutcomes.rows = map[string]*ctlRow{}
	}
	r := ctlOutcomes.rows[cmd]
	if r == nil {
		r = &ctlRow{flags: map[string]bool{}}
		ctlOutcomes.rows[cmd] = r
	}
	r.cases++
	if same {
		r.same++
	}
	for f := range flags {
		r.flags[f] = true
	}
}

const tableBegin, tableEnd = "<!-- compat-table begin -->", "<!-- compat-table end -->"

// ctlTable renders the matrix.
func ctlTable() string {
	ctlOutcomes.Lock()
	defer ctlOutcomes.Unlock()
	cmds := make([]string, 0, len(ctlOutcomes.rows))
	for c := range ctlOutcomes.rows {
		cmds = append(cmds, c)
	}
	sort.Strings(cmds)
	var b strings.Builder
	b.WriteString("| etcdctl command | cases | same output as etcd | flags exercised |\n|---|---|---|---|\n")
	total, same := 0, 0
	for _, c := range cmds {
		r := ctlOutcomes.rows[c]
		fl := make([]string, 0, len(r.flags))
		for f := range r.flags {
			fl = append(fl, "`"+f+"`")
		}
		sort.Strings(fl)
		fmt.Fprintf(&b, "| `%s` | %d | %d | %s |\n", c, r.cases, r.same, strings.Join(fl, " "))
		total += r.cases
		same += r.same
	}
	fmt.Fprintf(&b, "\n%d cases, %d with the same output as etcd 3.6.16 (after normalizing IDs, times and lease IDs).\n", total, same)
	return b.String()
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *compatTable != "" {
		if err := writeTable(*compatTable, ctlTable()); err != nil {
			fmt.Fprintln(os.Stderr, "compat.table:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// writeTable replaces what stands between the markers in path.
func writeTable(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, tableBegin), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s markers", path, tableBegin, tableEnd)
	}
	s = s[:i+len(tableBegin)] + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

func TestRecordCtl(t *testing.T) {
	ctlOutcomes.Lock()
	saved := ctlOutcomes.rows
	ctlOutcomes.rows = nil
	ctlOutcomes.Unlock()
	defer func() { ctlOutcomes.Lock(); ctlOutcomes.rows = saved; ctlOutcomes.Unlock() }()
	recordCtl([]string{"--endpoints=x", "lease", "grant", "10", "-w", "json"}, true)
	recordCtl([]string{"lease", "grant", "--", "-5"}, false)
	recordCtl([]string{"get", "k", "--prefix", "--rev=3"}, true)
	got := ctlTable()
	for _, want := range []string{"| `get` | 1 | 1 | `--prefix` `--rev` |", "| `lease grant` | 2 | 1 | `-w` |", "3 cases, 2 with the same output"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
