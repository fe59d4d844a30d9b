package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Snapshot file format (what Maintenance.Snapshot streams and
// `etcdctl snapshot save` writes):
//
//	magic "sett-snapshot-1\n" (16 bytes)
//	records: uvarint(len(key)) key uvarint(len(value)) value, for every
//	         Badger key of the store, in key order, as of one read point
//	terminator: uvarint(0)
//	zero padding up to a multiple of 512 bytes
//	SHA-256 of everything above (32 bytes; appended by the server, as etcd
//	appends it to its bbolt file)
//
// The padding makes the file pass etcdctl's check that a snapshot is a
// whole number of 512-byte sectors plus a SHA-256 trailer.
const snapshotMagic = "sett-snapshot-1\n"

// SnapshotBlock is the unit the snapshot body is padded to.
const SnapshotBlock = 512

// Snapshot is a consistent, point-in-time copy of the store, ready to be
// written out. Close it when done: it holds a Badger read point, which
// keeps the versions it reads from being garbage collected.
type Snapshot struct {
	txn     *badger.Txn
	size    int64
	rev     int64
	applied uint64
}

// Snapshot opens a consistent snapshot of the whole store.
func (s *Store) Snapshot() (*Snapshot, error) {
	rev := s.rev.Load()
	txn := s.db.NewTransaction(false)
	sn := &Snapshot{txn: txn, rev: rev}
	if applied, err := txnReadInt(txn, metaApplied, 0); err != nil {
		txn.Discard()
		return nil, err
	} else {
		sn.applied = uint64(applied)
	}
	n := int64(len(snapshotMagic))
	err := sn.each(func(k, v []byte) error {
		n += int64(uvarintLen(uint64(len(k))) + len(k) + uvarintLen(uint64(len(v))) + len(v))
		return nil
	})
	if err != nil {
		txn.Discard()
		return nil, err
	}
	n++ // terminator
	sn.size = (n + SnapshotBlock - 1) / SnapshotBlock * SnapshotBlock
	return sn, nil
}

// Size is the exact number of bytes WriteTo writes (without the SHA-256
// trailer).
func (sn *Snapshot) Size() int64 { return sn.size }

// Revision is (at least) the revision the snapshot holds.
func (sn *Snapshot) Revision() int64 { return sn.rev }

// AppliedIndex is the log index of the last entry the snapshot holds.
func (sn *Snapshot) AppliedIndex() uint64 { return sn.applied }

// Close releases the read point.
func (sn *Snapshot) Close() { sn.txn.Discard() }

func (sn *Snapshot) each(fn func(k, v []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	it := sn.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if err := item.Value(func(v []byte) error { return fn(k, v) }); err != nil {
			return err
		}
	}
	return nil
}

// WriteTo writes the snapshot body (Size bytes).
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := &countWriter{w: bw}
	var hdr [binary.MaxVarintLen64]byte
	if _, err := io.WriteString(cw, snapshotMagic); err != nil {
		return cw.n, err
	}
	err := sn.each(func(k, v []byte) error {
		for _, b := range [][]byte{k, v} {
			if _, err := cw.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(b)))]); err != nil {
				return err
			}
			if _, err := cw.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return cw.n, err
	}
	if _, err := cw.Write([]byte{0}); err != nil {
		return cw.n, err
	}
	if cw.n > sn.size {
		return cw.n, fmt.Errorf("snapshot grew while written: %d bytes, expected %d", cw.n, sn.size)
	}
	if _, err := cw.Write(make([]byte, sn.size-cw.n)); err != nil {
		return cw.n, err
	}
	return cw.n, bw.Flush()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// RestoreOptions are `sett snapshot restore`'s, after etcdutl's.
type RestoreOptions struct {
	// SkipHashCheck accepts a file without (or with a wrong) SHA-256
	// trailer.
	SkipHashCheck bool
	// BumpRevision is added to the restored revision, so that the next
	// write is above every revision clients saw before the restore.
	BumpRevision int64
	// MarkCompacted compacts at the (bumped) revision, so that watchers
	// and reads at older revisions get "compacted" rather than stale data.
	MarkCompacted bool
	Logger        *slog.Logger
}

// ErrBadSnapshot reports a file that is not a sett snapshot, or is damaged.
var ErrBadSnapshot = errors.New("not a valid sett snapshot")

// RestoreSnapshot creates a new data directory dir from the snapshot file
// path. dir must not exist or be empty. Alarms are not restored (they
// belong to the members of the cluster that was snapshotted), nor is the
// raft term.
func RestoreSnapshot(path, dir string, o RestoreOptions) (rev int64, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BumpRevision < 0 {
		return 0, fmt.Errorf("bump revision must not be negative")
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return 0, fmt.Errorf("data directory %s exists and is not empty", dir)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	body := fi.Size()
	if body%SnapshotBlock == sha256.Size {
		body -= sha256.Size
		if !o.SkipHashCheck {
			if err := verifySnapshotHash(f, body); err != nil {
				return 0, err
			}
		}
	} else if !o.SkipHashCheck {
		return 0, fmt.Errorf("%w: %s has no SHA-256 trailer (%d bytes); use --skip-hash-check to restore it anyway", ErrBadSnapshot, path, fi.Size())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	opts := DefaultOptions(dir)
	opts.Logger = o.Logger
	s, err := Open(opts)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	if err := loadSnapshot(s.db, bufio.NewReaderSize(io.LimitReader(f, body), 1<<20), false); err != nil {
		return 0, err
	}
	return s.finishRestore(o)
}

func verifySnapshotHash(f *os.File, body int64) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, body)); err != nil {
		return err
	}
	want := make([]byte, sha256.Size)
	if _, err := f.ReadAt(want, body); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%w: SHA-256 mismatch (the file is damaged)", ErrBadSnapshot)
	}
	return nil
}

// loadSnapshot writes a snapshot stream's records into db. Alarms and the
// membership belong to the cluster the snapshot came from: they are loaded
// only for sameCluster (a member catching up), not for a restore into a
// new cluster.
func loadSnapshot(db *badger.DB, r *bufio.Reader, sameCluster bool) error {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		// bbolt's meta page starts with a 16-byte page header, then its
		// magic number 0xED0CDAED (in native, here little-endian, order).
		if more, err := r.Peek(4); err == nil && string(more) == "\xed\xda\x0c\xed" {
			return fmt.Errorf("%w: this is an etcd (bbolt) snapshot; sett restores snapshots taken from sett", ErrBadSnapshot)
		}
		return fmt.Errorf("%w: bad header", ErrBadSnapshot)
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	readBytes := func() ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if n > 1<<31 {
			return nil, fmt.Errorf("%w: record of %d bytes", ErrBadSnapshot, n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return b, err
	}
	for {
		k, err := readBytes()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if len(k) == 0 {
			break
		}
		v, err := readBytes()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if bytes.Equal(k, metaTerm) || (!sameCluster && clusterState(k)) {
			continue
		}
		e := badger.NewEntry(k, v)
		if len(k) > 0 && k[0] == tagCurrent {
			// The current tree's tombstone mark lives in Badger's user
			// meta, which the stream does not carry: derive it again.
			rec, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
			}
			e = currentEntry(k[1:], &rec)
		}
		if err := wb.SetEntry(e); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// finishRestore applies the restore options to the loaded data and
// returns the resulting revision.
func (s *Store) finishRestore(o RestoreOptions) (int64, error) {
	if err := s.rollbackPending(); err != nil {
		return 0, err
	}
	if err := s.loadMeta(); err != nil {
		return 0, err
	}
	rev, compact := s.Rev(), s.CompactRev()
	if o.BumpRevision > 0 {
		rev += o.BumpRevision
	}
	if o.MarkCompacted {
		compact = rev
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(metaRevision, encodeInt(rev)); err != nil {
			return err
		}
		return txn.Set(metaCompact, encodeInt(compact))
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// SnapshotInfo describes a snapshot file, as `etcdutl snapshot status`
// describes etcd's.
type SnapshotInfo struct {
	// Hash is HashKV of the snapshot's newest revision: what
	// `etcdctl endpoint hashkv --rev` answered for it.
	Hash uint32 `json:"hash"`
	// Revision is the snapshot's newest revision.
	Revision int64 `json:"revision"`
	// TotalKey counts the keys live at Revision.
	TotalKey int `json:"totalKey"`
	// TotalSize is the file's size.
	TotalSize int64 `json:"totalSize"`
	// Version is the storage version the snapshot was taken as.
	Version string `json:"version"`
}

// InspectSnapshot checks a snapshot file and describes it, by restoring it
// into a temporary directory.
func InspectSnapshot(path, version string) (SnapshotInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return SnapshotInfo{}, err
	}
	tmp, err := os.MkdirTemp("", "sett-snapshot-status-")
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer os.RemoveAll(tmp)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(tmp, "data")
	if _, err := RestoreSnapshot(path, dir, RestoreOptions{Logger: log}); err != nil {
		return SnapshotInfo{}, err
	}
	opts := DefaultOptions(dir)
	opts.Logger = log
	s, err := Open(opts)
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer s.Close()
	ctx := context.Background()
	h, _, err := s.HashKV(ctx, 0)
	if err != nil {
		return SnapshotInfo{}, err
	}
	r, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return SnapshotInfo{}, err
	}
	return SnapshotInfo{Hash: h.Hash, Revision: h.Revision, TotalKey: int(r.Count), TotalSize: fi.Size(), Version: version}, nil
}
