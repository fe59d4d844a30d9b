package storage

import (
	"bytes"
	"context"

	"github.com/dgraph-io/badger/v4"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Events replays the revision tree: fn gets each revision in [from, to]
// with its events in the order they happened (a Txn's events together),
// until it returns false. to <= 0 means the newest revision. With withPrev,
// each non-create event carries the key's previous version when that
// version is still readable (its revision, mod-1, is not compacted), as
// etcd's watch fills prev_kv. A from below the compaction point fails with
// ErrCompacted.
func (s *Store) Events(ctx context.Context, from, to int64, withPrev bool, fn func(Revision) bool) error {
	cur, txn, compact := s.snapshot()
	defer txn.Discard()
	if to <= 0 || to > cur {
		to = cur
	}
	if from < compact {
		return ErrCompacted
	}
	if from > to {
		return nil
	}
	v := view{txn}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{tagRevision}
	it := txn.NewIterator(opts)
	defer it.Close()
	end := revisionKey(to+1, 0)
	var pending Revision
	n := 0
	for it.Seek(revisionKey(from, 0)); it.ValidForPrefix(opts.Prefix); it.Next() {
		k := it.Item().Key()
		if bytes.Compare(k, end) >= 0 {
			break
		}
		rev, _ := parseRevisionKey(k)
		if rev != pending.Rev && len(pending.Events) > 0 {
			if !fn(pending) {
				return nil
			}
			pending = Revision{}
		}
		if n++; n&255 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		key, rec, err := decodeEvent(b)
		if err != nil {
			return err
		}
		ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: rec.keyValue(key)}
		if rec.deleted {
			ev.Type = mvccpb.DELETE
			ev.Kv = &mvccpb.KeyValue{Key: key, ModRevision: rev}
		}
		if withPrev && !(ev.Type == mvccpb.PUT && rec.create == rec.mod) && rev-1 >= compact {
			prev, err := v.historyBefore(key, rev)
			if err != nil {
				return err
			}
			if prev != nil && !prev.deleted {
				ev.PrevKv = prev.keyValue(key)
			}
		}
		pending.Rev = rev
		pending.Events = append(pending.Events, ev)
	}
	if len(pending.Events) > 0 {
		fn(pending)
	}
	return nil
}
