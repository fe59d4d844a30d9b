package compat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sett-dev/sett/internal/testproc"
)

// fillKubernetesShaped writes a Kubernetes-shaped history into etcd:
// objects under /registry (creates, overwrites by transaction on
// mod_revision as kube-apiserver does, deletes), events on leases, and a
// compaction in the middle. It returns the compaction revision.
func fillKubernetesShaped(ctx context.Context, t *testing.T, c *clientv3.Client, objects int) int64 {
	t.Helper()
	kinds := []string{"pods/default", "configmaps/kube-system", "secrets/default", "services/specs/default", "deployments/apps"}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	key := func(i int) string { return fmt.Sprintf("/registry/%s/obj-%05d", kinds[i%len(kinds)], i) }
	val := func(i, gen int) string {
		return fmt.Sprintf(`{"kind":"Object","metadata":{"name":"obj-%05d","generation":%d},"spec":%q}`, i, gen, strings.Repeat("x", i%300))
	}
	for i := 0; i < objects; i++ {
		must(c.Put(ctx, key(i), val(i, 1)))
	}
	// Overwrites as kube-apiserver's GuaranteedUpdate does them.
	for i := 0; i < objects; i += 3 {
		g, err := c.Get(ctx, key(i))
		if err != nil {
			t.Fatal(err)
		}
		kv := g.Kvs[0]
		must(c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key(i)), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key(i), val(i, 2))).Else(clientv3.OpGet(key(i))).Commit())
	}
	for i := 0; i < objects; i += 7 {
		must(c.Delete(ctx, key(i)))
	}
	// Events live on a lease, as kube-apiserver writes them.
	lease, err := c.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < objects/10; i++ {
		must(c.Put(ctx, fmt.Sprintf("/registry/events/default/ev-%05d", i), val(i, 1), clientv3.WithLease(lease.ID)))
	}
	compactAt := mustRev(ctx, t, c)
	if _, err := c.Compact(ctx, compactAt, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// History after the compaction stays readable revision by revision.
	lease2, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < objects; i += 5 {
		must(c.Put(ctx, key(i), val(i, 3)))
	}
	for i := 2; i < objects; i += 11 {
		must(c.Delete(ctx, key(i)))
	}
	must(c.Delete(ctx, "/registry/events/", clientv3.WithPrefix(), clientv3.WithRev(0)))
	for i := 0; i < 20; i++ {
		must(c.Put(ctx, fmt.Sprintf("/registry/leases/kube-node-lease/node-%d", i), val(i, 1), clientv3.WithLease(lease2.ID)))
	}
	must(c.Txn(ctx).Then(clientv3.OpPut("/registry/ranges/serviceips", "a"), clientv3.OpPut("/registry/ranges/servicenodeports", "b"),
		clientv3.OpDelete(key(3))).Commit())
	return compactAt
}

func mustRev(ctx context.Context, t *testing.T, c *clientv3.Client) int64 {
	t.Helper()
	g, err := c.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	return g.Header.Revision
}

// compareStores checks that etcd and sett answer the same for every key at
// every revision from compact+1 to the current one, for leases, HashKV and
// a watch from the oldest readable revision.
func compareStores(ctx context.Context, t *testing.T, etcd, sett *clientv3.Client, etcdURL, settURL string, compact int64) {
	t.Helper()
	re, err := etcd.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := sett.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	cur := re.Header.Revision
	if rs.Header.Revision != cur {
		t.Fatalf("revision: sett %d, etcd %d", rs.Header.Revision, cur)
	}
	for rev := compact; rev <= cur; rev++ {
		e, eerr := etcd.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(rev))
		s, serr := sett.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(rev))
		if fmt.Sprint(eerr) != fmt.Sprint(serr) {
			t.Fatalf("rev %d: error sett %v, etcd %v", rev, serr, eerr)
		}
		if eerr != nil {
			continue
		}
		if !kvsEqual(e.Kvs, s.Kvs) {
			t.Fatalf("rev %d: %d keys from etcd, %d from sett, or they differ", rev, len(e.Kvs), len(s.Kvs))
		}
	}
	for _, rev := range []int64{compact - 1, 1} {
		_, eerr := etcd.Get(ctx, "a", clientv3.WithRev(rev))
		_, serr := sett.Get(ctx, "a", clientv3.WithRev(rev))
		if eerr == nil || fmt.Sprint(eerr) != fmt.Sprint(serr) {
			t.Errorf("rev %d below the compaction: sett %v, etcd %v", rev, serr, eerr)
		}
	}
	// Leases: same IDs, granted TTLs and attached keys.
	el, err := etcd.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := sett.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(el.Leases) != len(sl.Leases) {
		t.Fatalf("leases: sett %v, etcd %v", sl.Leases, el.Leases)
	}
	for _, l := range el.Leases {
		e, err := etcd.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		s, err := sett.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatalf("lease %x on sett: %v", l.ID, err)
		}
		if s.GrantedTTL != e.GrantedTTL || len(s.Keys) != len(e.Keys) || s.TTL <= 0 || s.TTL > s.GrantedTTL {
			t.Errorf("lease %x: sett granted %d ttl %d keys %d, etcd granted %d ttl %d keys %d", l.ID, s.GrantedTTL, s.TTL, len(s.Keys), e.GrantedTTL, e.TTL, len(e.Keys))
		}
	}
	// HashKV at the current and at the oldest readable revision.
	for _, rev := range []int64{cur, compact} {
		eh, err := etcd.HashKV(ctx, etcdURL, rev)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := sett.HashKV(ctx, settURL, rev)
		if err != nil {
			t.Fatal(err)
		}
		if eh.Hash != sh.Hash || eh.CompactRevision != sh.CompactRevision {
			t.Errorf("HashKV(%d): sett %d (compacted %d), etcd %d (compacted %d)", rev, sh.Hash, sh.CompactRevision, eh.Hash, eh.CompactRevision)
		}
	}
	// A watch from the oldest readable revision replays the same events.
	ee := watchAll(ctx, t, etcd, compact+1, cur)
	se := watchAll(ctx, t, sett, compact+1, cur)
	if len(ee) != len(se) {
		t.Fatalf("watch from %d: sett %d events, etcd %d", compact+1, len(se), len(ee))
	}
	for i := range ee {
		if ee[i].Type != se[i].Type || !kvsEqual([]*mvccpb.KeyValue{ee[i].Kv}, []*mvccpb.KeyValue{se[i].Kv}) {
			t.Fatalf("watch event %d: sett %v, etcd %v", i, se[i], ee[i])
		}
	}
}

func kvsEqual(a, b []*mvccpb.KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

// watchAll collects the events of a watch on every key from rev until the
// event at last.
func watchAll(ctx context.Context, t *testing.T, c *clientv3.Client, rev, last int64) []*mvccpb.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var evs []*mvccpb.Event
	for wr := range c.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		if err := wr.Err(); err != nil {
			t.Fatalf("watch from %d: %v", rev, err)
		}
		for _, ev := range wr.Events {
			evs = append(evs, (*mvccpb.Event)(ev))
		}
		if n := len(evs); n > 0 && evs[n-1].Kv.ModRevision >= last {
			return evs
		}
	}
	t.Fatalf("watch from %d ended before revision %d", rev, last)
	return nil
}

// TestMigrateFromEtcd fills real etcd with a Kubernetes-shaped history,
// snapshots it with etcdctl, restores the snapshot into sett and compares
// sett with etcd revision by revision.
func TestMigrateFromEtcd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := testproc.StartEtcd(t, testproc.Options{})
	ec := testproc.Client(t, e)
	compact := fillKubernetesShaped(ctx, t, ec, 3000)

	dir := t.TempDir()
	snap := filepath.Join(dir, "etcd.snap")
	if out, err := testproc.Etcdctl(t, e.ClientURL, "snapshot", "save", snap); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, out)
	}
	sett := testproc.BuildSett(t)

	// A damaged or truncated snapshot is refused and leaves no data dir.
	raw, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"flipped":   append(append([]byte(nil), raw[:len(raw)/2]...), append([]byte{raw[len(raw)/2] ^ 1}, raw[len(raw)/2+1:]...)...),
		"truncated": raw[:len(raw)-4096],
	}
	for name, b := range bad {
		f := filepath.Join(dir, name+".snap")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, name+".sett")
		out, err := runCommand(ctx, sett, "snapshot", "restore", f, "--data-dir", target, "--quiet")
		if err == nil || !strings.Contains(out, "SHA-256") {
			t.Errorf("restore of a %s snapshot: %v\n%s", name, err, out)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("restore of a %s snapshot left %s: %v", name, target, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1+len(bad) {
		t.Errorf("temporary files left in %s: %v", dir, entries)
	}

	restored := filepath.Join(dir, "restored")
	out, err := runCommand(ctx, sett, "snapshot", "restore", snap, "--data-dir", restored,
		"--name", "sett", "--initial-cluster-token", "migrated", "--quiet")
	if err != nil {
		t.Fatalf("sett snapshot restore: %v\n%s", err, out)
	}
	s := testproc.StartSett(t, testproc.Options{DataDir: restored})
	sc := testproc.Client(t, s)
	// etcd answers HashKV at its compaction revision from the hash it kept
	// while compacting (over the history before the compaction, which the
	// snapshot no longer holds) until it restarts; a restarted etcd, like
	// an etcd restored from the same snapshot, hashes what it holds.
	e.Restart(t)
	ec = testproc.Client(t, e)
	compareStores(ctx, t, ec, sc, e.ClientURL, s.ClientURL, compact)

	// Both accept the same next write at the same revision.
	pe, err := ec.Put(ctx, "/registry/after", "1")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := sc.Put(ctx, "/registry/after", "1")
	if err != nil {
		t.Fatal(err)
	}
	if pe.Header.Revision != ps.Header.Revision {
		t.Errorf("next write: sett at %d, etcd at %d", ps.Header.Revision, pe.Header.Revision)
	}
}

// TestMigrateFromEtcdDataDir restores an etcd data dir's member/snap/db,
// which has no SHA-256 trailer: refused without --skip-hash-check, as
// etcdutl does, imported with it.
func TestMigrateFromEtcdDataDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := testproc.StartEtcd(t, testproc.Options{})
	ec := testproc.Client(t, e)
	compact := fillKubernetesShaped(ctx, t, ec, 300)
	e.Stop()
	db := filepath.Join(e.DataDir, "member", "snap", "db")
	sett := testproc.BuildSett(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "restored")
	if out, err := runCommand(ctx, sett, "snapshot", "restore", db, "--data-dir", target); err == nil || !bytes.Contains([]byte(out), []byte("--skip-hash-check")) {
		t.Fatalf("restore of a db without trailer: %v\n%s", err, out)
	}
	if out, err := runCommand(ctx, sett, "snapshot", "restore", db, "--data-dir", target, "--skip-hash-check"); err != nil {
		t.Fatalf("sett snapshot restore --skip-hash-check: %v\n%s", err, out)
	}
	e.Restart(t)
	ec = testproc.Client(t, e)
	s := testproc.StartSett(t, testproc.Options{DataDir: target})
	compareStores(ctx, t, ec, testproc.Client(t, s), e.ClientURL, s.ClientURL, compact)
}
