package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	bolt "go.etcd.io/bbolt"
)

// Progress is reported while an etcd file is imported or exported.
type Progress struct {
	// Entries is the number of revision entries (changes) written so far,
	// of Total.
	Entries, Total int64
	// Bytes is the size of their keys and values in etcd's format.
	Bytes int64
	// Done is set on the last report.
	Done bool
}

// ImportOptions are `sett snapshot restore`'s for an etcd file.
type ImportOptions struct {
	// SkipHashCheck accepts a file without SHA-256 trailer (a data dir's
	// member/snap/db) and does not verify the trailer of one that has it.
	SkipHashCheck bool
	// Progress, if set, is called every few thousand entries and at the end.
	Progress func(Progress)
	// BumpRevision and MarkCompacted are RestoreOptions'.
	BumpRevision  int64
	MarkCompacted bool
	Logger        *slog.Logger
}

// ImportResult describes an imported store.
type ImportResult struct {
	Revision, CompactRevision int64
	Entries                   int64
	Leases                    int
}

// importFlushEvery bounds how many entries one progress step covers; the
// Badger write batch itself commits whenever its transaction is full, so
// memory stays bounded whatever the file's size.
const importFlushEvery = 8192

// ImportEtcd creates the data directory dir from an etcd backend file
// (`etcdctl snapshot save` output or member/snap/db of etcd 3.4–3.6):
// every change still in the file, with its create and mod revision,
// version, lease and value, deletions, the current and compacted revision,
// and leases with their TTLs. Membership, alarms and auth are not carried.
// The store is built in a temporary directory beside dir and renamed into
// place only once complete: on any error dir is left as it was.
func ImportEtcd(path, dir string, o ImportOptions) (res ImportResult, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return res, fmt.Errorf("data directory %s exists and is not empty", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".import-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)

	bdb, _, err := openEtcdDB(path, tmp, o.SkipHashCheck)
	if err != nil {
		return res, err
	}
	defer bdb.Close()

	data := filepath.Join(tmp, "data")
	opts := DefaultOptions(data)
	opts.Logger = o.Logger
	s, err := Open(opts)
	if err != nil {
		return res, err
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	var meta etcdMeta
	err = bdb.View(func(tx *bolt.Tx) error {
		if meta, err = readEtcdMeta(tx); err != nil {
			return err
		}
		if res, err = importEtcdTx(s.db, tx, o.Progress); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := s.attachImportedLeases(); err != nil {
		return res, err
	}
	target := max(meta.finished, meta.scheduled)
	res.Revision = max(res.Revision, target, 1) + max(o.BumpRevision, 0)
	if o.MarkCompacted {
		target = res.Revision
	}
	res.CompactRevision = target
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(metaRevision, encodeInt(res.Revision)); err != nil {
			return err
		}
		if err := txn.Set(metaCompact, encodeInt(target)); err != nil {
			return err
		}
		return txn.Set(metaCompactDone, encodeInt(meta.finished))
	})
	if err != nil {
		return res, err
	}
	// Finish etcd's compaction in sett's terms: a scheduled but unfinished
	// one, and the deletions at the compaction point that sett drops from
	// its current tree. Revisions below the finished point are already
	// compacted in the file.
	if target >= 0 {
		if err := s.compactRange(meta.finished, target, nil); err != nil {
			return res, err
		}
	}
	if err := s.Sync(); err != nil {
		return res, err
	}
	closed = true
	if err := s.Close(); err != nil {
		return res, err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	if err := os.Rename(data, dir); err != nil {
		return res, err
	}
	return res, nil
}

// importEtcdTx copies etcd's key and lease buckets into db.
func importEtcdTx(db *badger.DB, tx *bolt.Tx, progress func(Progress)) (ImportResult, error) {
	var res ImportResult
	kb := tx.Bucket(etcdKeyBucket)
	if kb == nil {
		return res, fmt.Errorf("%w: no key bucket", ErrBadEtcdDB)
	}
	total := int64(kb.Stats().KeyN)
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	var p Progress
	p.Total = total
	c := kb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		rev, sub, kv, tomb, err := decodeEtcdKV(k, v)
		if err != nil {
			return res, err
		}
		if rev < res.Revision {
			return res, fmt.Errorf("%w: revision %d after %d", ErrBadEtcdDB, rev, res.Revision)
		}
		rec := record{deleted: tomb, mod: rev}
		if !tomb {
			rec = record{create: kv.CreateRevision, mod: kv.ModRevision, version: kv.Version, lease: kv.Lease, value: kv.Value}
		}
		for _, e := range []*badger.Entry{
			currentEntry(kv.Key, &rec),
			badger.NewEntry(revisionKey(rev, sub), encodeEvent(kv.Key, &rec)),
			badger.NewEntry(historyKey(kv.Key, rev), encodeInt(sub)),
		} {
			if err := wb.SetEntry(e); err != nil {
				return res, err
			}
		}
		res.Revision = rev
		p.Entries++
		p.Bytes += int64(len(k) + len(v))
		if progress != nil && p.Entries%importFlushEvery == 0 {
			progress(p)
		}
	}
	res.Entries = p.Entries
	if lb := tx.Bucket(etcdLeaseBucket); lb != nil {
		err := lb.ForEach(func(_, v []byte) error {
			l, err := decodeEtcdLease(v)
			if err != nil {
				return fmt.Errorf("%w: lease: %v", ErrBadEtcdDB, err)
			}
			if err := wb.Set(leaseKey(l.id), encodeInt(l.ttl)); err != nil {
				return err
			}
			if l.remaining > 0 {
				if err := wb.Set(leaseRemainingKey(l.id), encodeInt(l.remaining)); err != nil {
					return err
				}
			}
			res.Leases++
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	if err := wb.Flush(); err != nil {
		return res, err
	}
	if progress != nil {
		p.Done = true
		progress(p)
	}
	return res, nil
}

// attachImportedLeases indexes every live key under its lease, reading the
// current tree once the revisions are all written.
func (s *Store) attachImportedLeases() error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{tagCurrent}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.UserMeta()&metaTombstone != 0 {
				continue
			}
			err := item.Value(func(v []byte) error {
				rec, err := decodeRecord(v)
				if err != nil || rec.lease == 0 {
					return err
				}
				return wb.Set(attachedKey(rec.lease, item.KeyCopy(nil)[1:]), nil)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return wb.Flush()
}
