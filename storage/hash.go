package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash"
	"hash/crc32"

	"github.com/dgraph-io/badger/v4"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// KVHash is the answer to HashKV: a hash of the MVCC history up to
// Revision, as it reads with the compaction point CompactRevision.
type KVHash struct {
	Hash            uint32
	CompactRevision int64
	Revision        int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV hashes the key space's history up to rev (0: the newest
// revision) the way etcd's HashKV does, and returns the current revision
// too. The hash is etcd's: CRC-32C over the name of etcd's "key" bucket
// and then, in revision order, every change etcd would still hold for the
// hash as its bucket key (main revision, '_', sub revision, 't' for a
// deletion) and its value (the mvccpb.KeyValue, only the key for a
// deletion). Changes at or below the compaction point count only if they
// are a key's newest live version at rev, and a deletion at the
// compaction point never counts, as in etcd. Two stores that applied the
// same commands therefore agree, and agree with etcd given the same
// requests, whatever their physical compaction progress.
func (s *Store) HashKV(ctx context.Context, rev int64) (KVHash, int64, error) {
	cur, compact := s.rev.Load(), s.compactRev.Load()
	if rev > 0 && rev < compact {
		return KVHash{}, 0, ErrCompacted
	}
	if rev > cur {
		return KVHash{}, cur, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	h, err := hashKV(ctx, view{txn}, rev, compact, false)
	return h, cur, err
}

func hashKV(ctx context.Context, v view, rev, compact int64, compaction bool) (KVHash, error) {
	h := crc32.New(castagnoli)
	h.Write([]byte("key"))
	if err := hashHistory(ctx, v, h, rev, compact, compaction); err != nil {
		return KVHash{}, err
	}
	return KVHash{Hash: h.Sum32(), CompactRevision: compact, Revision: rev}, nil
}

// HashPoint is a read point kept to hash a compaction's history after the
// compaction is applied (and physically removes part of it).
type HashPoint struct{ txn *badger.Txn }

// OpenHashPoint opens a read point for HashCompaction. Close it.
func (s *Store) OpenHashPoint() *HashPoint { return &HashPoint{txn: s.db.NewTransaction(false)} }

// Close releases the read point.
func (hp *HashPoint) Close() { hp.txn.Discard() }

// HashCompaction is the hash etcd computes while it compacts at rev, the
// previous compaction point being prev, and answers HashKV(rev) with from
// then on: HashKV's rules with prev as the compaction point, except that a
// key deleted exactly at rev counts as kept when deciding whether any key
// is.
func (hp *HashPoint) HashCompaction(ctx context.Context, rev, prev int64) (KVHash, error) {
	return hashKV(ctx, view{hp.txn}, rev, prev, true)
}

// Hash hashes the whole logical state: the key space's history up to the
// current revision (as HashKV) followed by the leases. It stands for etcd's
// Hash of its whole backend, which is meant for tests only.
func (s *Store) Hash(ctx context.Context) (uint32, int64, error) {
	cur, compact := s.rev.Load(), s.compactRev.Load()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	h := crc32.New(castagnoli)
	h.Write([]byte("sett"))
	if err := hashHistory(ctx, view{txn}, h, cur, compact, false); err != nil {
		return 0, 0, err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{tagLease}
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		h.Write(it.Item().Key())
		if err := it.Item().Value(func(v []byte) error { h.Write(v); return nil }); err != nil {
			return 0, 0, err
		}
	}
	return h.Sum32(), cur, nil
}

func hashHistory(ctx context.Context, v view, h hash.Hash32, rev, compact int64, compaction bool) error {
	// etcd skips changes at or below the compaction point that are not a
	// key's newest live version at rev, unless no key is live at rev (nor,
	// when it hashes as it compacts, deleted at rev): then it hashes
	// whatever of them its compaction left, which are the keys' newest
	// live versions at the compaction point.
	anyLive := false
	if err := v.scan([]byte{}, []byte{}, rev, func([]byte, *record) bool {
		anyLive = true
		return false
	}); err != nil {
		return err
	}
	if !anyLive && compaction {
		var err error
		if anyLive, err = deletesAt(v, rev); err != nil {
			return err
		}
	}
	keepAt := rev
	if !anyLive {
		keepAt = compact
	}

	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{tagRevision}
	it := v.txn.NewIterator(opts)
	defer it.Close()
	end := revisionKey(rev+1, 0)
	bk := make([]byte, 0, 18)
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.Compare(item.Key(), end) >= 0 {
			break
		}
		if n++; n&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		main, sub := parseRevisionKey(item.Key())
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		key, rec, err := decodeEvent(b)
		if err != nil {
			return err
		}
		if main <= compact {
			if rec.deleted {
				continue
			}
			at, err := v.at(key, keepAt)
			if err != nil {
				return err
			}
			if at == nil || at.mod != main {
				continue
			}
		}
		bk = binary.BigEndian.AppendUint64(bk[:0], uint64(main))
		bk = append(bk, '_')
		bk = binary.BigEndian.AppendUint64(bk, uint64(sub))
		kv := mvccpb.KeyValue{Key: key}
		if rec.deleted {
			bk = append(bk, 't')
		} else {
			kv = mvccpb.KeyValue{Key: key, CreateRevision: rec.create, ModRevision: rec.mod,
				Version: rec.version, Value: rec.value, Lease: rec.lease}
		}
		val, err := kv.Marshal()
		if err != nil {
			return err
		}
		h.Write(bk)
		h.Write(val)
	}
	return nil
}

// deletesAt reports whether revision rev deleted a key.
func deletesAt(v view, rev int64) (bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = revisionKey(rev, 0)[:9]
	it := v.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		deleted := false
		err := it.Item().Value(func(b []byte) error {
			_, rec, err := decodeEvent(b)
			deleted = rec.deleted
			return err
		})
		if err != nil || deleted {
			return deleted, err
		}
	}
	return false, nil
}
