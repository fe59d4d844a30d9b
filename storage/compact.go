package storage

import (
	"bytes"
	"errors"
	"sort"
	"sync"
	"time"

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
			start := time.Now()
			if err := s.compactRange(done, target, c.stopc); err != nil {
				if !errors.Is(err, errStopped) {
					s.log.Error("compaction failed", "from", done, "to", target, "err", err)
				}
				return
			}
			done = target
			s.log.Info("finished scheduled compaction", "compact-revision", target, "took", time.Since(start))
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
	var v int64
	err := s.db.View(func(txn *badger.Txn) (err error) {
		v, err = txnReadInt(txn, key, def)
		return err
	})
	return v, err
}

// compactRange removes, for every key changed in revisions [from, to], all
// changes older than its newest change at or below to, that change too if it
// is a deletion below to (a deletion at to stays replayable to watchers
// starting at to, as in etcd), and its tombstone in the current tree if it
// was deleted at or below to. Revision from is visited again because the
// previous run kept its deletions. Each step is idempotent, so an
// interrupted run is simply repeated.
func (s *Store) compactRange(from, to int64, stop <-chan struct{}) error {
	start := revisionKey(max(from, 0), 0)
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
	return s.writeLocked(func() error {
		return s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(metaCompactDone, encodeInt(to))
		})
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

// compactKeys deletes what compaction at rev no longer needs of keys.
// History and revision-tree entries at or below rev are never written by
// the applier, so they are deleted without holding it up; only dropping a
// current-tree tombstone takes applyMu, briefly, and re-checks the record.
func (s *Store) compactKeys(keys [][]byte, rev int64) error {
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	victims, tombstones, err := s.obsoleteHistory(keys, rev)
	if err != nil {
		return err
	}
	if err := s.writeLocked(func() error { return s.deleteKeys(victims) }); err != nil {
		return err
	}
	if len(tombstones) == 0 {
		return nil
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	var dead [][]byte
	err = s.db.View(func(txn *badger.Txn) error {
		for _, key := range tombstones {
			cur, err := view{txn}.current(key)
			if err != nil {
				return err
			}
			if cur != nil && cur.deleted && cur.mod <= rev {
				dead = append(dead, currentKey(key))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.deleteKeys(dead)
}

// deleteKeys deletes Badger keys in as many transactions as they need; the
// caller holds applyMu.
func (s *Store) deleteKeys(keys [][]byte) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// obsoleteHistory lists, for sorted keys, the history and revision-tree
// entries compaction at rev removes: every change older than the newest
// one at or below rev, and that one too when it is a deletion below rev
// (a key whose newest change is a deletion is returned among tombstones).
func (s *Store) obsoleteHistory(keys [][]byte, rev int64) (victims, tombstones [][]byte, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{tagHistory}
		it := txn.NewIterator(opts)
		defer it.Close()
		for _, key := range keys {
			prefix := historyPrefix(key)
			first := true
			for it.Seek(historyKey(key, rev)); it.ValidForPrefix(prefix); it.Next() {
				item := it.Item()
				_, hrev, err := parseHistoryKey(item.Key())
				if err != nil {
					return err
				}
				subb, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				sub, err := decodeInt(subb)
				if err != nil {
					return err
				}
				rk := revisionKey(hrev, sub)
				if first {
					first = false
					deleted, err := isDeletion(txn, rk)
					if err != nil {
						return err
					}
					if !deleted {
						continue // the version readable at rev
					}
					tombstones = append(tombstones, key)
					if hrev == rev {
						continue // a watcher starting at rev still sees it
					}
				}
				victims = append(victims, item.KeyCopy(nil), rk)
			}
		}
		return nil
	})
	return victims, tombstones, err
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
		if err := s.writeLocked(func() error { return s.db.RunValueLogGC(0.5) }); err != nil {
			return
		}
	}
}
