package storage

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// MaxKeyBytes is the longest key sett stores: Badger's key limit less the
// history index's framing. etcd has no such limit; a longer key is refused
// with "request is too large".
const MaxKeyBytes = 65000 - 12

// metaPending names the revision being written across several Badger
// transactions. While it is set, that revision is incomplete: readers never
// see it (the published revision has not advanced), and Open rolls it back.
var metaPending = []byte("m/pending")

// applyChunked applies one entry whose revision is too large for a single
// Badger transaction.
func (s *Store) applyChunked(e Entry) ([]Result, []Revision, error) {
	b := s.newBatch()
	b.chunked = true
	defer func() { b.txn.Discard() }()
	if err := b.txn.Set(metaPending, encodeInt(b.rev+1)); err != nil {
		return nil, nil, err
	}
	res, err := b.applyEntry(e)
	if err == nil {
		b.results = append(b.results, res)
		err = b.commit(e.Index)
	}
	if err != nil {
		// Undo what earlier chunks made durable before failing the batch.
		if rerr := s.rollbackPending(); rerr != nil {
			return nil, nil, errors.Join(err, rerr)
		}
		return nil, nil, err
	}
	return b.results, b.revs, nil
}

// spill commits the batch's writes so far and continues in a fresh
// transaction; outside a chunked batch the overflow is returned instead.
func (b *batch) spill() (*badger.Txn, error) {
	if !b.chunked {
		return nil, badger.ErrTxnTooBig
	}
	if err := b.txn.Commit(); err != nil {
		return nil, err
	}
	b.txn = b.s.db.NewTransaction(true)
	return b.txn, nil
}

// rollbackPending undoes an incomplete chunked revision: for every change
// it made, the key's previous record is restored in the current tree and
// lease attachments, and the change's history and revision-tree entries are
// removed (the revision-tree entry last, so an interrupted rollback resumes).
func (s *Store) rollbackPending() error {
	pending, err := s.readMeta(metaPending, 0)
	if err != nil || pending == 0 {
		return err
	}
	s.log.Warn("rolling back an incomplete revision", "revision", pending)
	for {
		changes, err := s.changesAt(pending, 1024)
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			break
		}
		if err := s.undoChanges(pending, changes); err != nil {
			return err
		}
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaPending) }); err != nil {
		return err
	}
	return s.syncLocked(true)
}

type change struct {
	key []byte
	sub int64
	rec record
}

func (s *Store) changesAt(rev int64, limit int) ([]change, error) {
	var out []change
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := revisionKey(rev, 0)[:9]
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			_, sub := parseRevisionKey(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			key, rec, err := decodeEvent(v)
			if err != nil {
				return err
			}
			out = append(out, change{key: key, sub: sub, rec: rec})
		}
		return nil
	})
	return out, err
}

func (s *Store) undoChanges(rev int64, changes []change) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	do := func(op func(*badger.Txn) error) error {
		err := op(txn)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = op(txn)
		}
		return err
	}
	for _, c := range changes {
		prev, err := view{txn}.historyBefore(c.key, rev)
		if err != nil {
			return err
		}
		var ops []func(*badger.Txn) error
		if c.rec.lease != 0 && !c.rec.deleted {
			ops = append(ops, func(t *badger.Txn) error { return t.Delete(attachedKey(c.rec.lease, c.key)) })
		}
		switch {
		case prev == nil:
			ops = append(ops, func(t *badger.Txn) error { return t.Delete(currentKey(c.key)) })
		default:
			restored := currentEntry(c.key, prev)
			ops = append(ops, func(t *badger.Txn) error { return t.SetEntry(restored) })
			if !prev.deleted && prev.lease != 0 {
				lease := prev.lease
				ops = append(ops, func(t *badger.Txn) error { return t.Set(attachedKey(lease, c.key), nil) })
			}
		}
		ops = append(ops,
			func(t *badger.Txn) error { return t.Delete(historyKey(c.key, rev)) },
			func(t *badger.Txn) error { return t.Delete(revisionKey(rev, c.sub)) })
		for _, op := range ops {
			if err := do(op); err != nil {
				return err
			}
		}
	}
	return txn.Commit()
}
