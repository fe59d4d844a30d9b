package compat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sett-dev/sett/internal/testproc"
)

// restoreWithEtcdutl runs real `etcdutl snapshot restore file` (with
// extra flags) into a new data dir for a one-member cluster and starts real
// etcd on it.
func restoreWithEtcdutl(ctx context.Context, t *testing.T, file string, extra ...string) *testproc.Proc {
	t.Helper()
	peer := testproc.FreePort(t)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	dir := filepath.Join(t.TempDir(), "etcd")
	args := append([]string{"snapshot", "restore", file, "--data-dir", dir, "--name", "etcd",
		"--initial-cluster", "etcd=" + peerURL, "--initial-advertise-peer-urls", peerURL}, extra...)
	if out, err := runCommand(ctx, testproc.EnsureBinary(t, "etcdutl"), args...); err != nil {
		t.Fatalf("etcdutl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return testproc.StartEtcd(t, testproc.Options{DataDir: dir, PeerPort: peer})
}

// settExport runs `sett snapshot export args... --out out --quiet`.
func settExport(ctx context.Context, t *testing.T, out string, args ...string) {
	t.Helper()
	args = append(append([]string{"snapshot", "export"}, args...), "--out", out, "--quiet")
	if msg, err := runCommand(ctx, testproc.BuildSett(t), args...); err != nil {
		t.Fatalf("sett %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
}

// sameNextWrite checks that both stores put the same key at the same next
// revision.
func sameNextWrite(ctx context.Context, t *testing.T, etcd, sett *clientv3.Client) {
	t.Helper()
	pe, err := etcd.Put(ctx, "/registry/after-migration", "1")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := sett.Put(ctx, "/registry/after-migration", "1")
	if err != nil {
		t.Fatal(err)
	}
	if pe.Header.Revision != ps.Header.Revision {
		t.Errorf("next write: at %d, etcd at %d", ps.Header.Revision, pe.Header.Revision)
	}
}

// boltBucket reads one bucket of an etcd snapshot file (SHA-256 trailer
// and all) as alternating keys and values.
func boltBucket(t *testing.T, file, bucket string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%512 != sha256.Size {
		t.Fatalf("%s: %d bytes, not a snapshot with SHA-256 trailer", file, len(raw))
	}
	body := raw[:len(raw)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], raw[len(body):]) {
		t.Fatalf("%s: SHA-256 trailer does not match", file)
	}
	copyPath := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(copyPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(copyPath, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out [][]byte
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("no bucket %q", bucket)
		}
		return b.ForEach(func(k, v []byte) error {
			out = append(out, bytes.Clone(k), bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return out
}

// TestMigrateToEtcd fills sett with a Kubernetes-shaped history, exports
// it with `sett snapshot export` (from the stopped data dir, and from a
// snapshot taken with `etcdctl snapshot save` against sett), restores the
// exports with real etcdutl (hash checked), starts real etcd on them and
// compares etcd with sett revision by revision: every key at every retained
// revision, reads below the compaction, leases and their TTLs, HashKV,
// watch replay and the next write's revision.
func TestMigrateToEtcd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	s := testproc.StartSett(t, testproc.Options{})
	sc := testproc.Client(t, s)
	compact := fillKubernetesShaped(ctx, t, sc, 2000)
	cur := mustRev(ctx, t, sc)

	dir := t.TempDir()
	saved := filepath.Join(dir, "sett.snap")
	if out, err := testproc.Etcdctl(t, s.ClientURL, "snapshot", "save", saved); err != nil {
		t.Fatalf("etcdctl snapshot save against sett: %v\n%s", err, out)
	}
	s.Stop()
	fromDir := filepath.Join(dir, "from-dir.db")
	settExport(ctx, t, fromDir, "--data-dir", s.DataDir)
	fromSnap := filepath.Join(dir, "from-snap.db")
	settExport(ctx, t, fromSnap, saved)
	// Both hold the same history (the snapshot file carries no membership).
	for _, b := range []string{"key", "lease"} {
		if a, c := boltBucket(t, fromDir, b), boltBucket(t, fromSnap, b); !equalPairs(a, c) {
			t.Errorf("bucket %s: export of the data dir and of the snapshot differ (%d and %d entries)", b, len(a)/2, len(c)/2)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("temporary files left beside the exports: %v", entries)
	}

	// etcdutl reads the export as one of etcd's own snapshots.
	status, err := runCommand(ctx, testproc.EnsureBinary(t, "etcdutl"), "snapshot", "status", fromDir, "-w", "json")
	if err != nil || !strings.Contains(status, fmt.Sprintf(`"revision":%d,`, cur)) || !strings.Contains(status, `"version":"3.6.0"`) {
		t.Errorf("etcdutl snapshot status: %v\n%s", err, status)
	}
	// A damaged export is refused by etcdutl's hash check.
	raw, err := os.ReadFile(fromDir)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCommand(ctx, testproc.EnsureBinary(t, "etcdutl"), "snapshot", "restore", damaged, "--data-dir", filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(out, "expected sha256") {
		t.Errorf("etcdutl restore of a damaged export: %v\n%s", err, out)
	}

	s.Restart(t)
	sc = testproc.Client(t, s)
	e := restoreWithEtcdutl(ctx, t, fromDir)
	ec := testproc.Client(t, e)
	compareStores(ctx, t, ec, sc, e.ClientURL, s.ClientURL, compact)

	e2 := restoreWithEtcdutl(ctx, t, fromSnap)
	e2c := testproc.Client(t, e2)
	compareStores(ctx, t, e2c, sc, e2.ClientURL, s.ClientURL, compact)

	sameNextWrite(ctx, t, ec, sc)
}

func equalPairs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestMigrateEtcdRoundTrip moves real etcd's data to sett and back:
// etcdctl snapshot save, sett snapshot restore, sett snapshot export,
// etcdutl snapshot restore. The key and lease buckets come back byte for
// byte, and etcd on the result answers as the original etcd does.
func TestMigrateEtcdRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := testproc.StartEtcd(t, testproc.Options{})
	ec := testproc.Client(t, e)
	compact := fillKubernetesShaped(ctx, t, ec, 2000)
	dir := t.TempDir()
	snap := filepath.Join(dir, "etcd.snap")
	if out, err := testproc.Etcdctl(t, e.ClientURL, "snapshot", "save", snap); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, out)
	}
	settDir := filepath.Join(dir, "sett")
	if out, err := runCommand(ctx, testproc.BuildSett(t), "snapshot", "restore", snap, "--data-dir", settDir, "--quiet"); err != nil {
		t.Fatalf("sett snapshot restore: %v\n%s", err, out)
	}
	back := filepath.Join(dir, "back.db")
	settExport(ctx, t, back, "--data-dir", settDir)
	for _, b := range []string{"key", "lease"} {
		if a, c := boltBucket(t, snap, b), boltBucket(t, back, b); !equalPairs(a, c) {
			t.Errorf("bucket %s: %d entries from etcd, %d after the round trip, or they differ", b, len(a)/2, len(c)/2)
		}
	}
	for _, k := range []string{"finishedCompactRev", "scheduledCompactRev"} {
		if !containsPair(boltBucket(t, back, "meta"), k, fmt.Sprintf("%016x5f%016x", compact, 0)) {
			t.Errorf("meta %s is not the compaction revision %d", k, compact)
		}
	}
	e2 := restoreWithEtcdutl(ctx, t, back)
	e2c := testproc.Client(t, e2)
	// Restarted, etcd hashes what it holds (see TestMigrateFromEtcd).
	e.Restart(t)
	ec = testproc.Client(t, e)
	compareStores(ctx, t, ec, e2c, e.ClientURL, e2.ClientURL, compact)
	sameNextWrite(ctx, t, ec, e2c)
}

func containsPair(pairs [][]byte, key, hexValue string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if string(pairs[i]) == key {
			return fmt.Sprintf("%x", pairs[i+1]) == hexValue
		}
	}
	return false
}

// TestMigrateBumpRevision restores one etcd snapshot with
// --bump-revision/--mark-compacted into etcd (etcdutl) and into sett and
// compares the results: the revision, reads and watches below the new
// compaction point, the keys, and the next write; the flags' misuse is
// refused as etcdutl refuses it. Exporting the bumped sett store and
// restoring it with etcdutl gives an etcd at the same revision again.
func TestMigrateBumpRevision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	src := testproc.StartEtcd(t, testproc.Options{})
	fillKubernetesShaped(ctx, t, testproc.Client(t, src), 300)
	dir := t.TempDir()
	snap := filepath.Join(dir, "etcd.snap")
	if out, err := testproc.Etcdctl(t, src.ClientURL, "snapshot", "save", snap); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, out)
	}
	src.Stop()
	etcdutl, sett := testproc.EnsureBinary(t, "etcdutl"), testproc.BuildSett(t)

	for _, flags := range [][]string{{"--bump-revision", "10"}, {"--mark-compacted"}} {
		args := append([]string{"snapshot", "restore", snap, "--data-dir", filepath.Join(t.TempDir(), "x")}, flags...)
		eout, eerr := runCommand(ctx, etcdutl, args...)
		sout, serr := runCommand(ctx, sett, args...)
		if eerr == nil || serr == nil || exitCode(eerr) != exitCode(serr) || lastLine(eout) != lastLine(sout) {
			t.Errorf("restore %v: sett %v %q, etcdutl %v %q", flags, serr, lastLine(sout), eerr, lastLine(eout))
		}
	}

	const bump = 1000
	e := restoreWithEtcdutl(ctx, t, snap, "--bump-revision", fmt.Sprint(bump), "--mark-compacted")
	ec := testproc.Client(t, e)
	settDir := filepath.Join(dir, "sett")
	if out, err := runCommand(ctx, sett, "snapshot", "restore", snap, "--data-dir", settDir, "--bump-revision", fmt.Sprint(bump), "--mark-compacted", "--quiet"); err != nil {
		t.Fatalf("sett snapshot restore --bump-revision: %v\n%s", err, out)
	}
	s := testproc.StartSett(t, testproc.Options{DataDir: settDir})
	sc := testproc.Client(t, s)
	compareBumped(ctx, t, ec, sc)

	s.Stop()
	back := filepath.Join(dir, "back.db")
	settExport(ctx, t, back, "--data-dir", settDir)
	e2 := restoreWithEtcdutl(ctx, t, back)
	compareBumped(ctx, t, ec, testproc.Client(t, e2))
	s.Restart(t)
	sameNextWrite(ctx, t, ec, testproc.Client(t, s))
}

// compareBumped compares two stores restored with a bumped and compacted
// revision.
func compareBumped(ctx context.Context, t *testing.T, etcd, other *clientv3.Client) {
	t.Helper()
	re, err := etcd.Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	ro, err := other.Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if re.Header.Revision != ro.Header.Revision || !kvsEqual(re.Kvs, ro.Kvs) {
		t.Errorf("after bump: revision %d with %d keys, etcd %d with %d keys (or they differ)", ro.Header.Revision, len(ro.Kvs), re.Header.Revision, len(re.Kvs))
	}
	cur := re.Header.Revision
	for _, rev := range []int64{cur - 1, cur - 1000} {
		_, eerr := etcd.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(rev))
		_, oerr := other.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(rev))
		if eerr == nil || fmt.Sprint(eerr) != fmt.Sprint(oerr) {
			t.Errorf("get at %d below the bumped compaction: %v, etcd %v", rev, oerr, eerr)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	we := <-etcd.Watch(wctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(cur-1))
	wo := <-other.Watch(wctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(cur-1))
	if we.CompactRevision != cur || wo.CompactRevision != we.CompactRevision {
		t.Errorf("watch from %d: compact revision %d, etcd %d", cur-1, wo.CompactRevision, we.CompactRevision)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
