package compat

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
)

var etcdctlDump = flag.Bool("etcdctl.dump", false, "log the normalized output of every etcdctl case, also when etcd and sett agree")

// etcdctlCase is one etcdctl invocation, run against real etcd and against
// sett; the two results must be identical after normalization.
//
// The cases form one script: they run in order, against both servers, and
// later cases depend on the keys and revisions earlier ones produced. Both
// servers start empty at revision 1, so revisions written literally in args
// are the same on both sides.
type etcdctlCase struct {
	args  []string // etcdctl arguments after --endpoints; "{L1}" etc. are replaced, see lease
	stdin string

	// lease, if set, names the lease granted by this case (a `lease grant`):
	// its ID is read from the output on each side, "{<lease>}" in the args
	// of later cases becomes that side's ID in hex, and the ID (hex or
	// decimal) is normalized to a placeholder in every later output.
	lease string
}

func ctl(args ...string) etcdctlCase { return etcdctlCase{args: args} }

func ctlIn(stdin string, args ...string) etcdctlCase {
	return etcdctlCase{args: args, stdin: stdin}
}

func ctlGrant(name string, args ...string) etcdctlCase {
	return etcdctlCase{args: args, lease: name}
}

// etcdctlScript is the whole sequence. Revisions after each write are noted
// on the right; the store starts at revision 1.
var etcdctlScript = []etcdctlCase{
	// --- put -------------------------------------------------------------
	ctl("put", "foo", "bar"),                              // 2
	ctl("put", "foo", "bar2", "-w", "json"),               // 3
	ctl("put", "--prev-kv", "foo", "bar3"),                // 4
	ctl("put", "--prev-kv", "-w", "json", "foo", "bar4"),  // 5
	ctl("put", "--prev-kv", "-w", "fields", "nk", "v"),    // 6 (no previous kv)
	ctl("put", "--ignore-value", "foo"),                   // 7 (value stays bar4)
	ctl("put", "--ignore-value", "--prev-kv", "foo"),      // 8
	ctl("put", "-w", "fields", "foo", "bar5"),             // 9
	ctl("put", "--ignore-value", "no-such-key"),           // error: key not found
	ctl("put", "", "v"),                                   // error: key is not provided
	ctl("put", "--ignore-value", "--ignore-lease", "foo"), // 10
	ctlIn("from stdin", "put", "stdin-key"),               // 11
	ctl("put", "only-key"),                                // client error: no value
	ctl("put", "s/c", "1"),                                // 12
	ctl("put", "s/a", "3"),                                // 13
	ctl("put", "s/b", "2"),                                // 14
	ctl("put", "s/a", "33"),                               // 15
	ctl("put", "s/c", "11"),                               // 16
	ctl("put", "s/a", "333"),                              // 17
	ctl("put", "s/d", "0"),                                // 18
	ctl("put", "s/e", "line1\nline2\t\xff", "-w", "json"), // 19

	// --- get -------------------------------------------------------------
	// At this point: s/a v3 "333" c13 m17, s/b v1 "2" c14 m14,
	// s/c v2 "11" c12 m16, s/d v1 "0" c18 m18, s/e v1 c19 m19.
	ctl("get", "foo"),
	ctl("get", "foo", "-w", "json"),
	ctl("get", "foo", "-w", "fields"),
	ctl("get", "foo", "-w", "simple"),
	ctl("get", "missing"),
	ctl("get", "missing", "-w", "json"),
	ctl("get", "missing", "-w", "fields"),
	ctl("get", "s/", "--prefix"),
	ctl("get", "s/", "--prefix", "-w", "json"),
	ctl("get", "s/", "--prefix", "--keys-only"),
	ctl("get", "s/", "--prefix", "--keys-only", "-w", "json"),
	ctl("get", "s/", "--prefix", "--count-only"), // client error: only with -w fields
	ctl("get", "s/", "--prefix", "--count-only", "-w", "fields"),
	ctl("get", "s/", "--prefix", "--print-value-only"),
	ctl("get", "s/", "--prefix", "--limit", "2"),
	ctl("get", "s/", "--prefix", "--limit", "2", "-w", "json"),
	ctl("get", "s/", "--prefix", "--limit", "2", "-w", "fields"),
	ctl("get", "s/", "--prefix", "--limit", "5", "-w", "json"),
	ctl("get", "s/", "--prefix", "--limit", "2", "--count-only", "-w", "fields"),
	ctl("get", "s/b", "--from-key", "--count-only", "-w", "fields"),
	ctl("get", "--from-key", "s/b"),
	ctl("get", "--from-key", "s/b", "--keys-only", "--limit", "2", "-w", "json"),
	ctl("get", "--from-key", "", "--keys-only"),
	ctl("get", "", "--prefix", "--keys-only"),
	ctl("get", "s/a", "s/c"),
	ctl("get", "s/a", "s/c", "-w", "json"),
	ctl("get", "s/b", "s/"), // end before start: empty
	ctl("get", "s/a", "--rev", "13"),
	ctl("get", "s/a", "--rev", "15", "-w", "json"),
	ctl("get", "s/a", "--rev", "12"), // before s/a existed
	ctl("get", "foo", "--rev", "5", "-w", "fields"),
	ctl("get", "s/", "--prefix", "--rev", "16", "-w", "json"),
	ctl("get", "s/", "--prefix", "--rev", "19"), // current revision
	ctl("get", "foo", "--rev", "20"),            // error: future revision
	ctl("get", "foo", "--rev", "100000", "-w", "json"),
	ctl("get", "foo", "--consistency", "s"),
	ctl("get", "s/", "--prefix", "--consistency", "s", "-w", "json"),
	ctl("get", "s/", "--prefix", "--min-mod-rev", "16"),
	ctl("get", "s/", "--prefix", "--max-mod-rev", "16"),
	ctl("get", "s/", "--prefix", "--min-create-rev", "14"),
	ctl("get", "s/", "--prefix", "--max-create-rev", "13"),
	ctl("get", "s/", "--prefix", "--min-mod-rev", "14", "--max-create-rev", "14", "--keys-only"),
	ctl("get", "s/", "--prefix", "--sort-by", "KEY", "--order", "ASCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "VERSION", "--order", "ASCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "CREATE", "--order", "ASCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "CREATE", "--order", "DESCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "MODIFY", "--order", "ASCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "VALUE", "--order", "ASCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "VALUE", "--order", "DESCEND"),
	ctl("get", "s/", "--prefix", "--sort-by", "MODIFY"), // order defaults to ASCEND
	ctl("get", "s/", "--prefix", "--order", "DESCEND"),  // target defaults to KEY
	ctl("get", "s/", "--prefix", "--sort-by", "VALUE", "--order", "DESCEND", "--limit", "2", "-w", "json"),
	ctl("get", "s/", "--prefix", "--sort-by", "CREATE", "--order", "DESCEND", "--keys-only", "--limit", "3"),
	ctl("get", "s/", "--prefix", "--sort-by", "BOGUS"), // client error
	ctl("get"), // client error: no key

	// --- lease + put --lease ----------------------------------------------
	ctlGrant("L1", "lease", "grant", "100"),
	ctl("put", "--lease", "{L1}", "lk", "lv"),                            // 20
	ctl("get", "lk", "-w", "json"),                                       //
	ctl("get", "lk", "-w", "fields"),                                     //
	ctl("put", "--ignore-lease", "lk", "lv2", "--prev-kv", "-w", "json"), // 21, keeps L1
	ctl("get", "lk", "-w", "json"),                                       //
	ctl("put", "lk", "lv3"),                                              // 22, detaches the lease
	ctl("get", "lk", "-w", "fields"),                                     //
	ctl("put", "--lease", "{L1}", "lk2", "v"),                            // 23
	ctl("put", "--lease", "{L1}", "--ignore-value", "lk2"),               // 24
	ctl("get", "lk2", "-w", "json"),                                      //
	ctlGrant("L2", "lease", "grant", "100", "-w", "json"),                //
	ctlGrant("L3", "lease", "grant", "50", "-w", "fields"),               //
	ctl("put", "--lease", "{L2}", "lk3", "v3"),                           // 25
	ctl("put", "--lease", "{L3}", "lk4", "v4"),                           // 26
	ctl("put", "--lease", "1234abcd", "x", "y"),                          // error: lease not found
	ctl("put", "--lease", "zz", "x", "y"),                                // client error: bad lease ID
	ctl("lease", "revoke", "{L1}"),                                       // 27 (deletes lk2)
	ctl("get", "lk", "--prefix", "-w", "json"),                           //
	ctl("lease", "revoke", "{L1}"),                                       // error: lease not found
	ctl("lease", "revoke", "{L2}", "-w", "json"),                         // 28 (deletes lk3)
	ctl("lease", "revoke", "{L3}", "-w", "fields"),                       // 29 (deletes lk4)
	ctl("get", "lk", "--prefix", "-w", "fields"),                         //
	ctlGrant("L4", "lease", "grant", "100"),                              //
	ctl("lease", "revoke", "{L4}"),                                       // no keys attached: revision unchanged
	ctl("get", "lk", "-w", "json"),                                       //
	ctl("lease", "revoke", "7fffffff"),                                   // error: lease not found

	// --- txn (non-interactive: compares, blank, success, blank, failure, blank)
	ctlIn("mod(\"foo\") > \"0\"\n\nput foo tx1\nget foo\n\nput foo nope\n\n", "txn"),                                                                 // 30
	ctlIn("value(\"foo\") = \"wrong\"\n\nput foo nope\n\nput t/f 1\nget --prefix s/ --limit 2\n\n", "txn", "-w", "json"),                             // 31
	ctlIn("version(\"s/a\") = \"3\"\ncreate(\"s/c\") < \"13\"\nmod(\"s/b\") = \"14\"\n\nput t/s 1\ndel s/d\n\nput t/x 1\n\n", "txn", "-w", "fields"), // 32
	ctlIn("\nput t/a 1\nput t/b 2\n\n\n", "txn"),                                 // 33, no compares: success
	ctlIn("\nput t/c 1\nget t/ --prefix --keys-only\n\n\n", "txn", "-w", "json"), // 34
	ctlIn("version(\"missing\") = \"0\"\n\nget missing\n\n\n", "txn"),
	ctlIn("create(\"missing\") = \"0\"\nmod(\"missing\") = \"0\"\n\nget t/a\n\n\n", "txn", "-w", "json"),
	ctlIn("value(\"foo\") != \"x\"\n\nget foo\n\n\n", "txn"),
	ctlIn("value(\"foo\") > \"tx0\"\nvalue(\"foo\") < \"tx2\"\n\nget foo --print-value-only\n\n\n", "txn"),
	ctlIn("version(\"foo\") < \"2\"\n\n\nget foo\n\n", "txn"),         // false, failure branch
	ctlIn("version(\"foo\") < \"2\"\n\n\nget foo -w json\n\n", "txn"), // client error
	ctlIn("version(\"foo\") < \"2\"\n\n\nget foo\n\n", "txn", "-w", "json"),
	ctlIn("value(\"foo\") = \"tx1\"\n\ndel t/ --prefix\n\n\n", "txn"), // 35
	ctlIn("value(\"foo\") = \"tx1\"\n\n\n\n", "txn", "-w", "json"),    // empty success branch
	ctlIn("value(\"foo\") = \"tx1\"\n\n\n\n", "txn", "-w", "fields"),  //
	ctlIn("\nput dup 1\nput dup 2\n\n\n", "txn"),                      // error: duplicate key
	ctlIn("\nput dup 1\ndel dup\n\n\n", "txn"),                        // error: duplicate key
	ctlIn("\nget dup\nget dup\n\n\n", "txn"),                          // reads may repeat
	ctlIn("bogus\n\n\n\n", "txn"),                                     // client error
	ctlIn("\nfrob x\n\n\n", "txn"),                                    // client error
	ctlIn("lease(\"lk\") = \"0\"\n\nget lk\n\n\n", "txn"),

	// --- del -------------------------------------------------------------
	ctl("put", "d/1", "v1"), // 36
	ctl("put", "d/2", "v2"), // 37
	ctl("put", "d/3", "v3"), // 38
	ctl("put", "d/4", "v4"), // 39
	ctl("put", "d/5", "v5"), // 40
	ctl("put", "d/6", "v6"), // 41
	ctl("del", "missing"),
	ctl("del", "missing", "-w", "json"),
	ctl("del", "d/1"),                              // 42
	ctl("del", "--prev-kv", "d/2"),                 // 43
	ctl("del", "--range", "d/3", "d/5"),            // 44 (d/3, d/4)
	ctl("del", "--prev-kv", "-w", "json", "d/5"),   // 45
	ctl("del", "--prev-kv", "-w", "fields", "d/6"), // 46
	ctl("del", "--prefix", "d/"),                   // nothing left
	ctl("get", "d/1", "--rev", "41", "-w", "json"), // history of a deleted key
	ctl("get", "d/", "--prefix", "--rev", "42", "--keys-only"),
	ctl("del", "--prefix", "s/", "--prev-kv", "-w", "json"), // 47
	ctl("del", "--prefix", "s/"),
	ctl("put", "z/1", "a"),                       // 48
	ctl("put", "z/2", "b"),                       // 49
	ctl("put", "zz", "c"),                        // 50
	ctl("del", "--from-key", "z/2", "--prev-kv"), // 51 (z/2, zz)
	ctl("del", "--from-key", "zzz"),
	ctl("del"),                                // client error: no key
	ctl("del", "a", "b", "c"),                 // client error: too many args
	ctl("del", "--prefix", "--from-key", "z"), // client error
	ctl("get", "", "--from-key", "-w", "json"),

	// --- compaction --------------------------------------------------------
	ctl("compaction", "5"),
	ctl("get", "foo", "--rev", "4"), // compacted
	ctl("get", "foo", "--rev", "4", "-w", "json"),
	ctl("get", "foo", "--rev", "5"),
	ctl("get", "foo", "--rev", "5", "-w", "json"),
	ctl("compaction", "--physical", "12"),
	ctl("get", "foo", "--rev", "11"),
	ctl("get", "s/", "--prefix", "--rev", "12", "-w", "json"),
	ctl("get", "s/", "--prefix", "--rev", "17"),
	ctl("compaction", "12"),               // already compacted
	ctl("compaction", "3"),                // already compacted
	ctl("compaction", "100000"),           // future revision
	ctl("compaction"),                     // client error
	ctl("compaction", "--physical", "51"), // the current revision
	ctl("get", "foo", "--rev", "50"),
	ctl("get", "", "--prefix", "--rev", "51", "-w", "json"),
	ctl("get", "foo", "--rev", "52"),                    // future revision
	ctl("put", "foo", "after-compaction", "-w", "json"), // 52
	ctl("get", "", "--prefix", "-w", "json"),
	ctl("compaction", "0"),

	// --- edge cases --------------------------------------------------------
	ctl("put", "ev", ""), // 53
	ctl("get", "ev", "-w", "json"),
	ctl("get", "ev", "-w", "fields"),
	ctl("put", "\xff\xff", "k"), // 54
	ctl("put", "\xff", "k2"),    // 55
	ctl("get", "--prefix", "\xff", "-w", "json"),
	ctl("get", "--prefix", "\xff\xff"),
	ctl("get", "--from-key", "\xff", "--keys-only", "-w", "json"),
	ctl("get", "foo", "--rev=-1", "-w", "json"),
	ctl("get", "", "--prefix", "--limit=-1", "--keys-only"),
	ctl("get", "", "--prefix", "--rev=0", "--count-only", "-w", "fields"),
	ctl("get", "", "--prefix", "--rev=52", "--limit=1", "--count-only", "-w", "fields"),
	ctlGrant("L5", "lease", "grant", "1"),
	ctl("lease", "revoke", "{L5}"),
	ctlGrant("L6", "lease", "grant", "0"),
	ctl("lease", "revoke", "{L6}"),
	ctlGrant("L7", "lease", "grant", "--", "-5"), // negative TTL: raised to the minimum
	ctl("lease", "revoke", "{L7}"),
	ctl("lease", "grant", "9000000001"),
	ctlIn(strings.Repeat("0123456789", 100_000), "put", "big1"), // 56
	ctl("get", "big1", "-w", "fields"),
	ctlIn(strings.Repeat("0123456789", 160_000), "put", "big2"), // error: request too large
	ctl("get", "big", "--prefix", "--keys-only"),
	ctl("del", "", "--prefix"), // 57
	ctl("get", "", "--prefix", "-w", "json"),
	ctl("get", "", "--prefix", "--rev", "56", "--keys-only"),
}

// etcdctlResult is what one etcdctl run produced.
type etcdctlResult struct {
	stdout, stderr string
	code           int
}

func (r etcdctlResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s--- stderr ---\n%s", r.code, ctlEnsureNL(r.stdout), ctlEnsureNL(r.stderr))
}

func ctlEnsureNL(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		return s + "\n(no newline at end)\n"
	}
	return s
}

// etcdctlSide is one server under test plus what the script learned about
// it (lease IDs).
type etcdctlSide struct {
	name     string
	endpoint string // http://127.0.0.1:port
	hostPort string // 127.0.0.1:port
	leases   map[string]int64
	order    []string // lease names in grant order
}

var (
	// Values that differ between any two clusters. Only non-zero values are
	// rewritten: etcd reports zeros inside txn responses, and those must
	// match exactly.
	ctlReHeaderJSON   = regexp.MustCompile(`"(cluster_id|member_id|raft_term)":[1-9][0-9]*`)
	ctlReHeaderFields = regexp.MustCompile(`"(ClusterID|MemberID|RaftTerm)" : [1-9][0-9]*`)
	// The etcd client's zap warnings on stderr carry a timestamp, a pointer
	// and the local address.
	ctlReLogTS     = regexp.MustCompile(`"ts":"[^"]*"`)
	ctlReLogTarget = regexp.MustCompile(`etcd-endpoints://0x[0-9a-f]+/`)
	ctlReLogLocal  = regexp.MustCompile(`LocalAddr: '[^']*'`)

	ctlRePlaceholder = regexp.MustCompile(`\{L[0-9]+\}`)

	ctlReGrantText   = regexp.MustCompile(`lease ([0-9a-f]+) granted`)
	ctlReGrantJSON   = regexp.MustCompile(`"ID":([0-9]+)`)
	ctlReGrantFields = regexp.MustCompile(`"ID" : ([0-9]+)`)
)

func (s *etcdctlSide) normalize(out string) string {
	out = ctlReHeaderJSON.ReplaceAllString(out, `"$1":<$1>`)
	out = ctlReHeaderFields.ReplaceAllString(out, `"$1" : <$1>`)
	out = ctlReLogTS.ReplaceAllString(out, `"ts":"<ts>"`)
	out = ctlReLogTarget.ReplaceAllString(out, `etcd-endpoints://<ptr>/`)
	out = ctlReLogLocal.ReplaceAllString(out, `LocalAddr: '<local>'`)
	out = strings.ReplaceAll(out, s.hostPort, "<endpoint>")
	for _, name := range s.order {
		id := s.leases[name]
		out = ctlReplaceWord(out, strconv.FormatInt(id, 10), "<"+name+":dec>")
		// etcdctl prints IDs zero-padded to 16 hex digits.
		out = ctlReplaceWord(out, fmt.Sprintf("%016x", id), "<"+name+":hex>")
		out = ctlReplaceWord(out, strconv.FormatInt(id, 16), "<"+name+":hex>")
	}
	return out
}

// ctlReplaceWord replaces old in s where it is not part of a longer run of
// letters and digits.
func ctlReplaceWord(s, old, repl string) string {
	re := regexp.MustCompile(`(^|[^0-9A-Za-z])` + regexp.QuoteMeta(old) + `($|[^0-9A-Za-z])`)
	// ReplaceAll does not find overlapping matches; loop until stable.
	for {
		n := re.ReplaceAllString(s, "${1}"+repl+"${2}")
		if n == s {
			return s
		}
		s = n
	}
}

func (s *etcdctlSide) expand(args []string) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		for name, id := range s.leases {
			a = strings.ReplaceAll(a, "{"+name+"}", strconv.FormatInt(id, 16))
		}
		if ctlRePlaceholder.MatchString(a) {
			return nil, fmt.Errorf("unresolved placeholder in %q", a)
		}
		out[i] = a
	}
	return out, nil
}

func (s *etcdctlSide) learnLease(name string, r etcdctlResult) error {
	var id int64
	if m := ctlReGrantText.FindStringSubmatch(r.stdout); m != nil {
		v, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			return err
		}
		id = int64(v)
	} else if m := ctlReGrantJSON.FindStringSubmatch(r.stdout); m != nil {
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return err
		}
		id = v
	} else if m := ctlReGrantFields.FindStringSubmatch(r.stdout); m != nil {
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return err
		}
		id = v
	} else {
		return fmt.Errorf("no lease ID in output of lease grant on %s:\n%s", s.name, r)
	}
	if id == 0 {
		return fmt.Errorf("lease grant on %s returned ID 0", s.name)
	}
	s.leases[name] = id
	s.order = append(s.order, name)
	return nil
}

// etcdctlEnv is our environment without ETCD_*/ETCDCTL_* variables, which
// etcdctl would take as flags (and warn about if unknown).
func etcdctlEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ETCD_") || strings.HasPrefix(k, "ETCDCTL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func runEtcdctl(bin, endpoint string, args []string, stdin string) (etcdctlResult, error) {
	return runEtcdctlFor(30*time.Second, bin, endpoint, args, stdin)
}

// runEtcdctlFor is runEtcdctl for commands that take longer (check perf).
func runEtcdctlFor(d time.Duration, bin, endpoint string, args []string, stdin string) (etcdctlResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints=" + endpoint}, args...)...)
	cmd.Env = etcdctlEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := etcdctlResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("etcdctl %s: timed out: %v", strings.Join(args, " "), err)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, err
	}
	return r, nil
}

func ctlCaseName(c etcdctlCase) string {
	name := strings.Join(c.args, " ")
	if c.stdin != "" {
		name += " <<< " + ctlStdinDesc(c.stdin)
	}
	return name
}

func ctlStdinDesc(stdin string) string {
	if len(stdin) > 200 {
		return fmt.Sprintf("<%d bytes>", len(stdin))
	}
	return strconv.Quote(stdin)
}

func ctlTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n... (%d more bytes)\n", len(s)-n)
}

// ctlExcerptDiff shortens two long, different outputs to the neighbourhood of
// their first difference.
func ctlExcerptDiff(a, b string) (string, string) {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	cut := func(s string) string {
		lo, hi := max(0, i-300), min(len(s), i+300)
		return fmt.Sprintf("(%d bytes; first difference at byte %d; bytes %d-%d:)\n%s\n", len(s), i, lo, hi, s[lo:hi])
	}
	return cut(a), cut(b)
}

// TestEtcdctl runs the same etcdctl commands against real etcd and against
// sett and requires byte-identical stdout, stderr and exit codes, modulo the
// IDs that necessarily differ between two clusters.
func TestEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	bin, sides := startSides(t)

	failed := 0
	for i, c := range etcdctlScript {
		name := fmt.Sprintf("%03d %s", i, ctlCaseName(c))
		ok := t.Run(name, func(t *testing.T) {
			res := runOnBoth(t, bin, sides, c)
			got := [2]etcdctlResult{}
			for j, s := range sides {
				got[j] = etcdctlResult{
					stdout: s.normalize(res[j].stdout),
					stderr: s.normalize(res[j].stderr),
					code:   res[j].code,
				}
			}
			recordCtl(c.args, got[0] == got[1])
			if got[0] != got[1] {
				a, b := got[0].String(), got[1].String()
				if len(a)+len(b) > 8000 {
					a, b = ctlExcerptDiff(a, b)
				}
				t.Errorf("etcdctl %s\nstdin: %s\n===== etcd =====\n%s===== sett =====\n%s", strings.Join(c.args, " "), ctlStdinDesc(c.stdin), a, b)
			} else if *etcdctlDump {
				t.Logf("etcdctl %s\nstdin: %s\n%s", strings.Join(c.args, " "), ctlStdinDesc(c.stdin), ctlTruncate(got[0].String(), 4000))
			}
		})
		if !ok {
			failed++
		}
	}
	if failed > 0 {
		t.Logf("%d of %d etcdctl cases differ between etcd and sett", failed, len(etcdctlScript))
	}
}

// runOnBoth runs one etcdctl case against every side at once, then lets
// each side learn the lease IDs the case printed.
func runOnBoth(t *testing.T, bin string, sides []*etcdctlSide, c etcdctlCase) [2]etcdctlResult {
	t.Helper()
	var (
		wg   sync.WaitGroup
		res  [2]etcdctlResult
		errs [2]error
	)
	for j, s := range sides {
		args, err := s.expand(c.args)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[j], errs[j] = runEtcdctl(bin, s.endpoint, args, c.stdin)
		}()
	}
	wg.Wait()
	for j, s := range sides {
		if errs[j] != nil {
			t.Fatalf("%s: %v\n%s", s.name, errs[j], res[j])
		}
		if c.lease != "" {
			if err := s.learnLease(c.lease, res[j]); err != nil {
				t.Fatal(err)
			}
		}
	}
	return res
}

// startSides starts a fresh etcd and sett and returns etcdctl and the two
// sides to run it against.
func startSides(t *testing.T) (string, []*etcdctlSide) {
	t.Helper()
	bin := testproc.EnsureBinary(t, "etcdctl")
	etcd := testproc.StartEtcd(t, testproc.Options{})
	sett := testproc.StartSett(t, testproc.Options{})
	return bin, []*etcdctlSide{
		{name: "etcd", endpoint: etcd.ClientURL, hostPort: etcd.ClientAddr(), leases: map[string]int64{}},
		{name: "sett", endpoint: sett.ClientURL, hostPort: sett.ClientAddr(), leases: map[string]int64{}},
	}
}
