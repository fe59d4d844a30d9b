package compat

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sett-dev/sett/internal/testproc"
)

// mirrorRoute is one make-mirror from a source server to a destination
// server; "ee" (etcd to etcd) is the reference the others are compared
// with.
type mirrorRoute struct {
	name     string // "ee", "ss", "se", "es": source kind, destination kind
	src, dst *testproc.Proc
}

// mmReRevisionLine drops the revisions from `get -w fields`: two mirrors
// write into each destination, interleaved.
var (
	mmReRevisionLine = regexp.MustCompile(`(?m)^"(Revision|CreateRevision|ModRevision)" : [0-9]+\n`)
	mmReCountLine    = regexp.MustCompile(`(?m)^[0-9]+\n`)
)

// TestMakeMirrorEtcdctl mirrors a prefix from etcd and from sett into etcd
// and into sett with etcdctl make-mirror (base sync, then the updates it
// watches; and from a given --rev with small transactions), and compares
// each destination's copy with what etcd-to-etcd produced: keys, values,
// versions and leases.
func TestMakeMirrorEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	t.Parallel() // overlaps with the other parallel etcdctl suites
	bin := testproc.EnsureBinary(t, "etcdctl")
	procs := map[string]*testproc.Proc{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range []string{"etcd-src", "etcd-dst", "sett-src", "sett-dst"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p *testproc.Proc
			if strings.HasPrefix(n, "etcd") {
				p = testproc.StartEtcd(t, testproc.Options{})
			} else {
				p = testproc.StartSett(t, testproc.Options{})
			}
			mu.Lock()
			procs[n] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	kind := map[byte]string{'e': "etcd", 's': "sett"}
	var routes []mirrorRoute
	for _, n := range []string{"ee", "ss", "se", "es"} {
		routes = append(routes, mirrorRoute{name: n, src: procs[kind[n[0]]+"-src"], dst: procs[kind[n[1]]+"-dst"]})
	}
	sources := []*clientv3.Client{testproc.Client(t, procs["etcd-src"]), testproc.Client(t, procs["sett-src"])}
	// write runs one change on both sources, which therefore keep the
	// same revisions.
	write := func(f func(ctx context.Context, c *clientv3.Client) error) {
		t.Helper()
		for _, c := range sources {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			err := f(ctx, c)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	put := func(k, v string) {
		write(func(ctx context.Context, c *clientv3.Client) error { _, err := c.Put(ctx, k, v); return err })
	}
	del := func(k string, opts ...clientv3.OpOption) {
		write(func(ctx context.Context, c *clientv3.Client) error { _, err := c.Delete(ctx, k, opts...); return err })
	}

	// Before the mirrors start: what the base sync copies.
	put("src/a", "1")
	put("src/b", "2")
	put("src/c", "3")
	put("other/x", "9") // outside the prefix
	put("src/b", "22")
	put("src/d", "4")
	del("src/d")
	put("src/e", "5") // revision 9: the --rev mirrors start here
	const fromRev = "9"

	rounds := []struct {
		name  string
		flags []string
	}{
		{"base", []string{"--prefix=src/"}},
		{"rev", []string{"--prefix=src/", "--rev=" + fromRev, "--max-txn-ops=2"}},
	}
	type running struct {
		route mirrorRoute
		dp    string // destination prefix
		args  []string
		proc  *bgCtl
	}
	var mirrors []*running
	for _, rd := range rounds {
		for _, r := range routes {
			dp := rd.name + "-" + r.name + "/"
			args := append(append([]string{"make-mirror"}, rd.flags...), "--dest-prefix="+dp, r.dst.ClientURL)
			mirrors = append(mirrors, &running{route: r, dp: dp, args: args, proc: startBg(t, bin, r.src.ClientURL, args)})
		}
	}

	// The base sync reads the source at the revision it starts from: the
	// updates must come after it (all four keys copied), or what is copied
	// by the sync and what as an update would be timing.
	waitFor := func(m *running, key string, count int64) {
		t.Helper()
		dst := testproc.Client(t, m.route.dst)
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			r, err := dst.Get(ctx, m.dp+key, clientv3.WithPrefix(), clientv3.WithCountOnly())
			cancel()
			if err == nil && r.Count == count {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcdctl %s (%s): the destination has %v keys %s* after 30s, want %d; the mirror printed:\n%s",
					strings.Join(m.args, " "), m.route.name, r, m.dp+key, count, m.proc.stdout())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, m := range mirrors[:len(routes)] {
		waitFor(m, "", 4)
	}

	// While they run: updates, several changes in one revision, a lease
	// revocation, and a last key that tells when a mirror is done.
	put("src/a", "11")
	del("src/c")
	write(func(ctx context.Context, c *clientv3.Client) error {
		_, err := c.Txn(ctx).Then(
			clientv3.OpPut("src/f", "6"), clientv3.OpPut("src/g", "7"),
			clientv3.OpDelete("src/a"), clientv3.OpPut("src/b", "222"), clientv3.OpPut("src/h", "8"),
		).Commit()
		return err
	})
	put("other/y", "10")
	write(func(ctx context.Context, c *clientv3.Client) error {
		l, err := c.Grant(ctx, 100)
		if err != nil {
			return err
		}
		if _, err := c.Put(ctx, "src/leased", "l", clientv3.WithLease(l.ID)); err != nil {
			return err
		}
		if _, err := c.Put(ctx, "src/leased2", "l", clientv3.WithLease(l.ID)); err != nil {
			return err
		}
		_, err = c.Revoke(ctx, l.ID)
		return err
	})
	put("src/e", strings.Repeat("v", 3000))
	del("src/f", clientv3.WithRange("src/h"))
	put("src/zz-end", "1")

	for _, m := range mirrors {
		waitFor(m, "zz-end", 1)
	}

	// Each destination's copy, and what each mirror printed once
	// interrupted, against etcd to etcd's.
	listing := func(m *running) etcdctlResult {
		t.Helper()
		r, err := runEtcdctl(bin, m.route.dst.ClientURL, []string{"get", m.dp, "--prefix", "-w", "fields"}, "")
		if err != nil {
			t.Fatal(err)
		}
		r.stdout = mmReRevisionLine.ReplaceAllString(strings.ReplaceAll(r.stdout, m.dp, "<dest-prefix>/"), "")
		r.stdout = collapseRuns(ctlReHeaderFields.ReplaceAllString(r.stdout, `"$1" : <$1>`))
		return r
	}
	finished := func(m *running) etcdctlResult {
		r := m.proc.interrupt()
		// Every 30 s make-mirror prints how many keys it copied.
		r.stdout = mmReCountLine.ReplaceAllString(r.stdout, "")
		return r
	}
	for i := 0; i < len(mirrors); i += len(routes) {
		ref := mirrors[i]
		refList := listing(ref)
		if !strings.Contains(refList.stdout, "<dest-prefix>/zz-end") || strings.Contains(refList.stdout, "other/") {
			t.Fatalf("test bug: etcd to etcd mirrored:\n%s", refList)
		}
		var lists [4]etcdctlResult
		var ends [4]etcdctlResult
		for j := range routes {
			lists[j] = listing(mirrors[i+j])
		}
		for j := range routes {
			ends[j] = finished(mirrors[i+j])
		}
		for j := 1; j < len(routes); j++ {
			m := mirrors[i+j]
			same := lists[j] == lists[0] && ends[j] == ends[0]
			recordCtl(m.args, same)
			if lists[j] != lists[0] {
				t.Errorf("etcdctl %s: %s mirrored differently from etcd to etcd:\n===== etcd to etcd =====\n%s===== %s =====\n%s",
					strings.Join(ref.args, " "), m.route.name, lists[0], m.route.name, lists[j])
			}
			if ends[j] != ends[0] {
				t.Errorf("etcdctl %s: %s ended differently:\n===== etcd to etcd =====\n%s===== %s =====\n%s",
					strings.Join(ref.args, " "), m.route.name, ends[0], m.route.name, ends[j])
			}
		}
		if *etcdctlDump {
			t.Logf("etcdctl %s\n%s", strings.Join(ref.args, " "), refList)
		}
	}

	// Refusals, from etcd into etcd and from sett into sett.
	write(func(ctx context.Context, c *clientv3.Client) error {
		r, err := c.Get(ctx, "src/zz-end")
		if err != nil {
			return err
		}
		_, err = c.Compact(ctx, r.Header.Revision)
		return err
	})
	sides := []*etcdctlSide{
		{name: "etcd", endpoint: procs["etcd-src"].ClientURL, hostPort: procs["etcd-src"].ClientAddr(), leases: map[string]int64{}},
		{name: "sett", endpoint: procs["sett-src"].ClientURL, hostPort: procs["sett-src"].ClientAddr(), leases: map[string]int64{}},
	}
	dests := []*testproc.Proc{procs["etcd-dst"], procs["sett-dst"]}
	for _, args := range [][]string{
		{"make-mirror"},
		{"make-mirror", "a", "b"},
		{"make-mirror", "--dest-prefix=x/", "--no-dest-prefix", "{DEST}"},
		{"make-mirror", "--prefix=src/", "--rev=3", "--dest-prefix=compacted/", "{DEST}"}, // compacted
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var res [2]etcdctlResult
			var errs [2]error
			var wg sync.WaitGroup
			for j, s := range sides {
				a := make([]string, len(args))
				for k, x := range args {
					a[k] = strings.ReplaceAll(x, "{DEST}", dests[j].ClientURL)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[j], errs[j] = runEtcdctl(bin, s.endpoint, a, "")
				}()
			}
			wg.Wait()
			var got [2]etcdctlResult
			for j, s := range sides {
				if errs[j] != nil {
					t.Fatalf("%s: %v", s.name, errs[j])
				}
				norm := func(out string) string {
					return strings.ReplaceAll(s.normalize(out), dests[j].ClientAddr(), "<dest>")
				}
				got[j] = etcdctlResult{stdout: norm(res[j].stdout), stderr: norm(res[j].stderr), code: res[j].code}
			}
			recordCtl(args, got[0] == got[1])
			if got[0] != got[1] {
				t.Errorf("etcdctl %s\n===== etcd =====\n%s===== sett =====\n%s", strings.Join(args, " "), got[0], got[1])
			} else if *etcdctlDump {
				t.Logf("etcdctl %s\n%s", strings.Join(args, " "), got[0])
			}
		})
	}
}
