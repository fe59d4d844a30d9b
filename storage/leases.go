package storage

import (
	"encoding/binary"
	"errors"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Lease is a granted lease as stored: its ID, granted TTL in seconds and,
// from LeaseStates only, its last checkpointed remaining TTL in seconds
// (0: never checkpointed, or cleared by a renewal). How much time a lease
// has left is otherwise the lessor's business, not the store's.
type Lease struct {
	ID        int64
	TTL       int64
	Remaining int64
}

// LeaseChange is one lease a committed batch granted or revoked. A batch
// that revokes and grants the same ID again reports only the final grant.
type LeaseChange struct {
	ID      int64
	TTL     int64 // granted TTL; unused when Revoked
	Revoked bool
}

// LeaseObserver is told of the leases each committed batch granted and
// revoked, in apply order, after the batch is durable and before its
// proposers are answered. It runs on the applier and must not block on
// writes.
type LeaseObserver func([]LeaseChange)

// leaseSet is the committed set of leases, mirrored in memory.
type leaseSet struct {
	mu       sync.RWMutex
	m        map[int64]int64 // ID -> TTL
	observer LeaseObserver
}

// Lease records: 'l' + ID (9 bytes) holds the granted TTL; 'l' + ID + 'r'
// (10 bytes) holds the remaining TTL of the last checkpoint, if any.
const leaseRemainingSuffix = 'r'

func leaseRemainingKey(id int64) []byte {
	return append(leaseKey(id), leaseRemainingSuffix)
}

func loadLeases(db *badger.DB) (*leaseSet, error) {
	ls := &leaseSet{m: map[int64]int64{}}
	err := scanLeases(db, func(id, ttl, _ int64) { ls.m[id] = ttl })
	return ls, err
}

// scanLeases reads every lease record with its checkpointed remaining TTL.
func scanLeases(db *badger.DB, fn func(id, ttl, remaining int64)) error {
	return db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{tagLease}
		it := txn.NewIterator(opts)
		defer it.Close()
		// A lease's remaining-TTL record sorts right after its TTL record.
		var (
			have            bool
			id, ttl, remain int64
		)
		flush := func() {
			if have {
				fn(id, ttl, remain)
			}
			have = false
		}
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			n, err := decodeInt(v)
			if err != nil {
				return err
			}
			if len(k) < 9 {
				return errCorrupt
			}
			kid := int64(binary.BigEndian.Uint64(k[1:9]))
			switch {
			case len(k) == 9:
				flush()
				have, id, ttl, remain = true, kid, n, 0
			case len(k) == 10 && k[9] == leaseRemainingSuffix:
				if have && kid == id {
					remain = n
				}
				// A remaining TTL without its lease is ignored.
			default:
				return errCorrupt
			}
		}
		flush()
		return nil
	})
}

// Leases lists the granted leases in ID order (without Remaining).
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

// LeaseStates lists the granted leases in ID order with their checkpointed
// remaining TTLs, as committed.
func (s *Store) LeaseStates() ([]Lease, error) {
	var out []Lease
	err := scanLeases(s.db, func(id, ttl, remaining int64) {
		out = append(out, Lease{ID: id, TTL: ttl, Remaining: remaining})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Lease looks up one committed lease (without Remaining).
func (s *Store) Lease(id int64) (Lease, bool) {
	s.leases.mu.RLock()
	defer s.leases.mu.RUnlock()
	ttl, ok := s.leases.m[id]
	return Lease{ID: id, TTL: ttl}, ok
}

// ObserveLeases registers the observer of lease grants and revokes (one;
// a later call replaces it). Register it before the first write.
func (s *Store) ObserveLeases(o LeaseObserver) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	s.leases.observer = o
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

// merge publishes a committed batch's grants and revokes, then tells the
// observer (outside the lock, so that it may read the set).
func (ls *leaseSet) merge(pending map[int64]*int64) {
	if len(pending) == 0 {
		return
	}
	changes := make([]LeaseChange, 0, len(pending))
	ls.mu.Lock()
	for id, ttl := range pending {
		if ttl == nil {
			delete(ls.m, id)
			changes = append(changes, LeaseChange{ID: id, Revoked: true})
		} else {
			ls.m[id] = *ttl
			changes = append(changes, LeaseChange{ID: id, TTL: *ttl})
		}
	}
	obs := ls.observer
	ls.mu.Unlock()
	if obs != nil {
		sort.Slice(changes, func(i, j int) bool { return changes[i].ID < changes[j].ID })
		obs(changes)
	}
}

// txnDo runs op on the batch's transaction; when the transaction is full
// in a chunked batch, it continues in a fresh one (see spill). Outside a
// chunked batch the overflow is returned, and the batch is split.
func (b *batch) txnDo(op func(*badger.Txn) error) error {
	err := op(b.txn)
	if errors.Is(err, badger.ErrTxnTooBig) {
		txn, serr := b.spill()
		if serr != nil {
			return serr
		}
		err = op(txn)
	}
	return err
}
