package storage

import (
	"bytes"
	"errors"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

var metaCompactDone = []byte("m/compact-done")

// compactChunk bounds the deletions of one compaction transaction, so that
// the applier is never held up for long.
const compactChunk = 4096

type compactWaiter struct {
	rev  int64
	done chan struct{}
}

// compactor physically removes what a logical compaction made unreadable.
// It works through the revision tree from the last finished point up to the
// newest scheduled one, and persists its progress so a restart resumes.
type compactor struct {
	mu      sync.Mutex
	target  int64
	waiters []compactWaiter
	wake    chan struct{}
	stopc   chan struct{}
	wg      sync.WaitGroup
}

func (c *compactor) start(s *Store) {
	c.wake = make(chan struct{}, 1)
	c.stopc = make(chan struct{})
	c.target = s.compactRev.Load()
	c.wg.Add(1)
	go c.run(s)
}

func (c *compactor) stop() {
	close(c.stopc)
	c.wg.Wait()
}

func (c *compactor) schedule(w compactWaiter) {
	c.mu.Lock()
	if w.rev > c.target {
		c.target = w.rev
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *compactor) run(s *Store) {
	defer c.wg.Done()
	done, err := s.readMeta(metaCompactDone, -1)
	if err != nil {
		s.log.Error("compaction: read progress", "err", err)
		return
	}
	for {
		c.mu.Lock()
		target := c.target
		c.mu.Unlock()
		if target > done {
			if err := s.compactRange(done, target, c.stopc); err != nil {
				if !errors.Is(err, errStopped) {
					s.log.Error("compaction failed", "from", done, "to", target, "err", err)
				}
				return
			}
			done = target
			s.reclaimValueLog()
		}
		c.mu.Lock()
		kept := c.waiters[:0]
		for _, w := range c.waiters {
			if w.rev <= done {
				close(w.done)
			} else {
				kept = append(kept, w)
			}
		}
		c.waiters = kept
		c.mu.Unlock()
		select {
		case <-c.stopc:
			return
		case <-c.wake:
		}
	}
}

var errStopped = errors.New("storage: stopped")

func (s *Store) readMeta(key []byte, def int64) (int64, error) {
	var v int64 = def
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v, err = decodeInt(b)
		return err
	})
	return v, err
}

// compactRange removes, for every key changed in revisions (from, to], all
// changes older than its newest change at or below to, that change too if it
// is a deletion, and its tombstone in the current tree if it was deleted at
// or below to. Each step is idempotent, so an interrupted run is simply
// repeated.
func (s *Store) compactRange(from, to int64, stop <-chan struct{}) error {
	start := revisionKey(from+1, 0)
	if from < 0 {
		start = revisionKey(0, 0)
	}
	end := revisionKey(to+1, 0)
	for {
		select {
		case <-stop:
			return errStopped
		default:
		}
		keys, next, err := s.changedKeys(start, end)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := s.compactKeys(keys, to); err != nil {
				return err
			}
		}
		if next == nil {
			break
		}
		start = next
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaCompactDone, encodeInt(to))
	})
}

// changedKeys reads up to compactChunk distinct keys from the revision tree
// in [start, end) and where to continue (nil at the end).
func (s *Store) changedKeys(start, end []byte) ([][]byte, []byte, error) {
	seen := map[string]bool{}
	var keys [][]byte
	var next []byte
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{tagRevision}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix(opts.Prefix); it.Next() {
			k := it.Item().Key()
			if bytes.Compare(k, end) >= 0 {
				return nil
			}
			if len(keys) >= compactChunk {
				next = it.Item().KeyCopy(nil)
				return nil
			}
			err := it.Item().Value(func(v []byte) error {
				key, _, err := decodeEvent(v)
				if err != nil {
					return err
				}
				if !seen[string(key)] {
					seen[string(key)] = true
					keys = append(keys, bytes.Clone(key))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return keys, next, err
}

// compactKeys deletes what compaction at rev no longer needs of keys. It
// holds applyMu so it never races the applier over a current-tree record.
func (s *Store) compactKeys(keys [][]byte, rev int64) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	flush := func() error {
		if err := txn.Commit(); err != nil {
			return err
		}
		txn = s.db.NewTransaction(true)
		return nil
	}
	del := func(k []byte) error {
		err := txn.Delete(k)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := flush(); err != nil {
				return err
			}
			err = txn.Delete(k)
		}
		return err
	}
	for _, key := range keys {
		victims, err := s.obsoleteHistory(txn, key, rev)
		if err != nil {
			return err
		}
		for _, k := range victims {
			if err := del(k); err != nil {
				return err
			}
		}
		cur, err := view{txn}.current(key)
		if err != nil {
			return err
		}
		if cur != nil && cur.deleted && cur.mod <= rev {
			if err := del(currentKey(key)); err != nil {
				return err
			}
		}
	}
	return txn.Commit()
}

// obsoleteHistory lists the history and revision-tree keys of key that
// compaction at rev removes.
func (s *Store) obsoleteHistory(txn *badger.Txn, key []byte, rev int64) ([][]byte, error) {
	prefix := historyPrefix(key)
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var out [][]byte
	first := true
	for it.Seek(historyKey(key, rev)); it.ValidForPrefix(prefix); it.Next() {
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
		rk := revisionKey(hrev, sub)
		if first {
			first = false
			deleted, err := isDeletion(txn, rk)
			if err != nil {
				return nil, err
			}
			if !deleted {
				continue // the version readable at rev
			}
		}
		out = append(out, item.KeyCopy(nil), rk)
	}
	return out, nil
}

func isDeletion(txn *badger.Txn, revKey []byte) (bool, error) {
	item, err := txn.Get(revKey)
	if err != nil {
		return false, err
	}
	var deleted bool
	err = item.Value(func(v []byte) error {
		_, r, err := decodeEvent(v)
		deleted = r.deleted
		return err
	})
	return deleted, err
}

// reclaimValueLog rewrites value-log files that are mostly garbage.
func (s *Store) reclaimValueLog() {
	for i := 0; i < 16; i++ {
		if err := s.db.RunValueLogGC(0.5); err != nil {
			return
		}
	}
}
