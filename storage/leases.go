package storage

import (
	"encoding/binary"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Lease is a granted lease as stored: its ID and granted TTL in seconds.
// Remaining time is the lessor's business, not the store's.
type Lease struct {
	ID  int64
	TTL int64
}

// leaseSet is the committed set of leases, mirrored in memory.
type leaseSet struct {
	mu sync.RWMutex
	m  map[int64]int64 // ID -> TTL
}

func loadLeases(db *badger.DB) (*leaseSet, error) {
	ls := &leaseSet{m: map[int64]int64{}}
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{tagLease}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 9 {
				return errCorrupt
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			ttl, err := decodeInt(v)
			if err != nil {
				return err
			}
			ls.m[int64(binary.BigEndian.Uint64(k[1:]))] = ttl
		}
		return nil
	})
	return ls, err
}

// Leases lists the granted leases in ID order.
func (s *Store) Leases() []Lease {
	s.leases.mu.RLock()
	defer s.leases.mu.RUnlock()
	out := make([]Lease, 0, len(s.leases.m))
	for id, ttl := range s.leases.m {
		out = append(out, Lease{ID: id, TTL: ttl})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LeaseKeys lists the keys attached to lease id, in key order.
func (s *Store) LeaseKeys(id int64) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		keys = attachedKeys(txn, id)
		return nil
	})
	return keys, err
}

func attachedKeys(txn *badger.Txn, id int64) [][]byte {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = attachedPrefix(id)
	it := txn.NewIterator(opts)
	defer it.Close()
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil)[len(opts.Prefix):])
	}
	return keys
}

// leaseView is the lease set as a batch sees it: committed leases plus the
// grants and revokes of earlier commands in the same batch.
type leaseView struct {
	base    *leaseSet
	pending map[int64]*int64 // nil value: revoked in this batch
}

func (lv leaseView) exists(id int64) bool {
	if p, ok := lv.pending[id]; ok {
		return p != nil
	}
	if lv.base == nil {
		return false
	}
	lv.base.mu.RLock()
	defer lv.base.mu.RUnlock()
	_, ok := lv.base.m[id]
	return ok
}

func (ls *leaseSet) merge(pending map[int64]*int64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for id, ttl := range pending {
		if ttl == nil {
			delete(ls.m, id)
		} else {
			ls.m[id] = *ttl
		}
	}
}
