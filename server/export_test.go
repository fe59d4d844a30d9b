package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// `sett snapshot export` takes --out and exactly one source, and writes an
// etcd snapshot file (whole 512-byte sectors plus the SHA-256 trailer).
func TestSnapshotExportCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s, err := storage.Open(storage.DefaultOptions(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Apply([]storage.Entry{{Index: 1, Req: &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "etcd.db")
	for _, args := range [][]string{
		{"export", "--data-dir", data},                            // no --out
		{"export", "--out", out},                                  // no source
		{"export", "file.snap", "--data-dir", data, "--out", out}, // two sources
	} {
		var stdout, stderr bytes.Buffer
		if code := SnapshotCommand(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "exactly one") {
			t.Errorf("%v: exit %d, %s", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := SnapshotCommand([]string{"export", "--data-dir", data, "--out", out, "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("export: exit %d, %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "at revision 2 (compacted at -1; 1 revision entries, 0 leases") {
		t.Errorf("export said %q", stdout.String())
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size()%512 != 32 {
		t.Errorf("exported file: %v, %d bytes", err, fi.Size())
	}
	if code := SnapshotCommand([]string{"export", "--data-dir", filepath.Join(dir, "missing"), "--out", out}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "not a sett data directory") {
		t.Errorf("export of a missing dir: exit %d, %s", code, stderr.String())
	}
}

func TestProgressLineVerb(t *testing.T) {
	got := progressLine("exported", storage.Progress{Entries: 50, Total: 100, Bytes: 5000}, 0)
	if !strings.HasPrefix(got, "exported 50/100 revisions (50%), 5.0 kB") {
		t.Errorf("progress line %q", got)
	}
}
