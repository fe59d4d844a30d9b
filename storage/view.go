package storage

import (
	"bytes"
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// view reads the key space through one Badger transaction: a snapshot for
// readers, or the applier's write transaction (which sees its own pending
// writes).
type view struct {
	txn *badger.Txn
}

// current returns key's record in the current tree, tombstones included.
func (v view) current(key []byte) (*record, error) {
	item, err := v.txn.Get(currentKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(b)
	return &r, err
}

// liveCurrent is current without tombstones.
func (v view) liveCurrent(key []byte) (*record, error) {
	r, err := v.current(key)
	if r == nil || err != nil || r.deleted {
		return nil, err
	}
	return r, nil
}

// at returns the live record of key at revision rev, or nil.
func (v view) at(key []byte, rev int64) (*record, error) {
	r, err := v.current(key)
	if r == nil || err != nil {
		return nil, err
	}
	return v.resolve(key, r, rev)
}

// resolve turns key's current record into its record at rev.
func (v view) resolve(key []byte, cur *record, rev int64) (*record, error) {
	if cur.mod <= rev {
		if cur.deleted {
			return nil, nil
		}
		return cur, nil
	}
	return v.historyAt(key, rev)
}

// historyAt is key's live record at rev from the history index, or nil.
func (v view) historyAt(key []byte, rev int64) (*record, error) {
	r, err := v.history(key, rev)
	if r == nil || err != nil || r.deleted {
		return nil, err
	}
	return r, nil
}

// historyBefore is key's newest record (live or tombstone) below rev, or
// nil when compaction or creation leaves none.
func (v view) historyBefore(key []byte, rev int64) (*record, error) {
	return v.history(key, rev-1)
}

// history finds key's newest change at or below rev in the history index
// and reads it, tombstones included, from the revision tree.
func (v view) history(key []byte, rev int64) (*record, error) {
	prefix := historyPrefix(key)
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := v.txn.NewIterator(opts)
	defer it.Close()
	it.Seek(historyKey(key, rev))
	if !it.ValidForPrefix(prefix) {
		return nil, nil
	}
	item := it.Item()
	_, hrev, err := parseHistoryKey(item.Key())
	if err != nil {
		return nil, err
	}
	subb, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	sub, err := decodeInt(subb)
	if err != nil {
		return nil, err
	}
	ev, err := v.txn.Get(revisionKey(hrev, sub))
	if err != nil {
		return nil, err
	}
	b, err := ev.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	_, r, err := decodeEvent(b)
	return &r, err
}

// scan visits, in key order, every key in [key, end) live at rev; end nil
// means key alone, empty end means no upper bound. fn returns false to stop.
// With valuesToo false, records passed to fn may lack their value.
func (v view) scan(key, end []byte, rev int64, fn func(key []byte, r *record) bool) error {
	if end == nil {
		r, err := v.at(key, rev)
		if err != nil || r == nil {
			return err
		}
		fn(key, r)
		return nil
	}
	if len(end) > 0 && bytes.Compare(end, key) <= 0 {
		return nil
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte{tagCurrent}
	it := v.txn.NewIterator(opts)
	defer it.Close()
	stop := []byte(nil)
	if len(end) > 0 {
		stop = currentKey(end)
	}
	for it.Seek(currentKey(key)); it.ValidForPrefix(opts.Prefix); it.Next() {
		item := it.Item()
		k := item.Key()
		if stop != nil && bytes.Compare(k, stop) >= 0 {
			break
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		cur, err := decodeRecord(b)
		if err != nil {
			return err
		}
		userKey := append([]byte(nil), k[1:]...)
		r, err := v.resolve(userKey, &cur, rev)
		if err != nil {
			return err
		}
		if r != nil && !fn(userKey, r) {
			return nil
		}
	}
	return nil
}
