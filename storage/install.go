package storage

import (
	"bufio"
	"errors"
	"io"

	"github.com/dgraph-io/badger/v4"
)

// txnReadInt reads an integer meta key in txn, def if it is absent.
func txnReadInt(txn *badger.Txn, key []byte, def int64) (int64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(b)
}

// Install replaces the whole store with a snapshot stream another member
// wrote (Snapshot.WriteTo), while the store is open: a member too far
// behind the log catches up this way. Applying is blocked meanwhile;
// reads that run during the install may see it half done. On return the
// store holds exactly the snapshot's state, durably, and the lease
// observer has been told of every lease that appeared, vanished or
// changed its TTL.
func (s *Store) Install(r io.Reader) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	before := s.leases.copyTTLs()
	if err := s.db.DropAll(); err != nil {
		return err
	}
	if err := loadSnapshot(s.db, bufio.NewReaderSize(r, 1<<20), true); err != nil {
		return err
	}
	if err := s.rollbackPending(); err != nil {
		return err
	}
	if err := s.loadMeta(); err != nil {
		return err
	}
	alarms, err := loadAlarms(s.db)
	if err != nil {
		return err
	}
	s.alarmState.replace(alarms)
	after, err := loadLeases(s.db)
	if err != nil {
		return err
	}
	if !s.noSync {
		if err := s.db.Sync(); err != nil {
			return err
		}
		if err := s.wal.sync(); err != nil {
			return err
		}
	}
	pending := map[int64]*int64{}
	for id, ttl := range after.m {
		if old, ok := before[id]; !ok || old != ttl {
			pending[id] = &ttl
		}
	}
	for id := range before {
		if _, ok := after.m[id]; !ok {
			pending[id] = nil
		}
	}
	s.leases.merge(pending)
	s.compactor.schedule(compactWaiter{rev: s.compactRev.Load(), done: make(chan struct{})})
	return nil
}

func (ls *leaseSet) copyTTLs() map[int64]int64 {
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	m := make(map[int64]int64, len(ls.m))
	for id, ttl := range ls.m {
		m[id] = ttl
	}
	return m
}
