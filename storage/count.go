package storage

import (
	"bytes"

	"github.com/dgraph-io/badger/v4"
)

// maxCountCorrections bounds the keys changed after the counted revision
// that countLive corrects for one by one before it resolves every record.
const maxCountCorrections = 4096

// countLive counts the keys in [key, end) live at rev (end as in scan).
// It counts the keys whose current-tree entry is not marked a tombstone,
// which reads no record, then corrects for the keys changed after rev (the
// revision tree beyond rev lists them; usually a batch in flight or a few
// writes since a pinned list began). When too many keys changed, each
// record is resolved at rev instead.
func (v view) countLive(key, end []byte, rev int64) (int64, error) {
	if end == nil {
		r, err := v.at(key, rev)
		if r == nil || err != nil {
			return 0, err
		}
		return 1, nil
	}
	if len(end) > 0 && bytes.Compare(end, key) <= 0 {
		return 0, nil
	}
	changed, ok, err := v.changedSince(rev, key, end)
	if err != nil {
		return 0, err
	}
	n, err := v.countCurrent(key, end, !ok, rev)
	if err != nil || !ok {
		return n, err
	}
	for _, k := range changed {
		cur, err := v.current(k)
		if err != nil {
			return 0, err
		}
		if cur != nil && !cur.deleted {
			n-- // counted as live now
		}
		if cur != nil {
			r, err := v.resolve(k, cur, rev)
			if err != nil {
				return 0, err
			}
			if r != nil {
				n++ // live at rev
			}
		}
	}
	return n, nil
}

// countCurrent counts the current-tree entries in [key, end): by their
// tombstone mark, or, with resolve, by resolving each record at rev.
func (v view) countCurrent(key, end []byte, resolve bool, rev int64) (int64, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte{tagCurrent}
	it := v.txn.NewIterator(opts)
	defer it.Close()
	var stop []byte
	if len(end) > 0 {
		stop = currentKey(end)
	}
	var n int64
	for it.Seek(currentKey(key)); it.ValidForPrefix(opts.Prefix); it.Next() {
		item := it.Item()
		k := item.Key()
		if stop != nil && bytes.Compare(k, stop) >= 0 {
			break
		}
		if !resolve {
			if item.UserMeta()&metaTombstone == 0 {
				n++
			}
			continue
		}
		err := item.Value(func(b []byte) error {
			cur, err := decodeRecord(b)
			if err != nil {
				return err
			}
			r, err := v.resolve(k[1:], &cur, rev)
			if r != nil {
				n++
			}
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// changedSince lists the distinct keys in [key, end) that the view holds
// changes of after rev, including those of a half-written chunked
// revision; ok is false when there are more than maxCountCorrections.
func (v view) changedSince(rev int64, key, end []byte) (keys [][]byte, ok bool, err error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{tagRevision}
	it := v.txn.NewIterator(opts)
	defer it.Close()
	seen := map[string]bool{}
	for it.Seek(revisionKey(rev+1, 0)); it.ValidForPrefix(opts.Prefix); it.Next() {
		err := it.Item().Value(func(b []byte) error {
			k, _, err := decodeEvent(b)
			if err != nil {
				return err
			}
			if bytes.Compare(k, key) >= 0 && (len(end) == 0 || bytes.Compare(k, end) < 0) && !seen[string(k)] {
				seen[string(k)] = true
				keys = append(keys, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		if len(keys) > maxCountCorrections {
			return nil, false, nil
		}
	}
	return keys, true, nil
}
