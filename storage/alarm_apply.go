package storage

import (
	"encoding/binary"
	"errors"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ErrNoSpace refuses a write while the NOSPACE alarm is active (etcd's
// "mvcc: database space exceeded").
var ErrNoSpace = errors.New("etcdserver: mvcc: database space exceeded")

// ErrCorrupt refuses a write while the CORRUPT alarm is active.
var ErrCorrupt = errors.New("etcdserver: corrupt cluster")

// Alarms are persisted one key each, 'm/alarm/' + memberID(8) + type(4),
// with an empty value, in the same transaction as the command that raised
// or cleared them; they are mirrored in memory for the hot checks.
var alarmPrefix = []byte("m/alarm/")

func alarmKey(member uint64, t pb.AlarmType) []byte {
	b := append([]byte(nil), alarmPrefix...)
	b = binary.BigEndian.AppendUint64(b, member)
	return binary.BigEndian.AppendUint32(b, uint32(t))
}

// alarmSet is the in-memory mirror of the persisted alarms.
type alarmSet struct {
	mu      sync.Mutex
	loaded  bool
	m       map[alarmID]struct{}
	noSpace atomic.Bool
	corrupt atomic.Bool
	list    atomic.Pointer[[]*pb.AlarmMember] // sorted snapshot for readers
}

type alarmID struct {
	member uint64
	typ    pb.AlarmType
}

// loadAlarms reads the persisted alarms into their in-memory mirror.
func loadAlarms(db *badger.DB) (*alarmSet, error) {
	as := &alarmSet{m: map[alarmID]struct{}{}, loaded: true}
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = alarmPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(alarmPrefix):]
			if len(k) != 12 {
				return errCorrupt
			}
			as.m[alarmID{binary.BigEndian.Uint64(k), pb.AlarmType(binary.BigEndian.Uint32(k[8:]))}] = struct{}{}
		}
		return nil
	})
	as.publishLocked()
	return as, err
}

func (s *Store) alarms() *alarmSet { return s.alarmState }

func (as *alarmSet) publishLocked() {
	list := make([]*pb.AlarmMember, 0, len(as.m))
	noSpace, corrupt := false, false
	for id := range as.m {
		list = append(list, &pb.AlarmMember{MemberID: id.member, Alarm: id.typ})
		noSpace = noSpace || id.typ == pb.AlarmType_NOSPACE
		corrupt = corrupt || id.typ == pb.AlarmType_CORRUPT
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Alarm != list[j].Alarm {
			return list[i].Alarm < list[j].Alarm
		}
		return list[i].MemberID < list[j].MemberID
	})
	as.list.Store(&list)
	as.noSpace.Store(noSpace)
	as.corrupt.Store(corrupt)
}

func (as *alarmSet) set(id alarmID, on bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	if on {
		as.m[id] = struct{}{}
	} else {
		delete(as.m, id)
	}
	as.publishLocked()
}

// Alarms lists the active alarms of type t (every type for NONE), ordered
// by type then member.
func (s *Store) Alarms(t pb.AlarmType) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for _, a := range *s.alarms().list.Load() {
		if t == pb.AlarmType_NONE || a.Alarm == t {
			out = append(out, &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm})
		}
	}
	return out
}

// NoSpace reports whether a NOSPACE alarm is active.
func (s *Store) NoSpace() bool { return s.alarms().noSpace.Load() }

// Corrupt reports whether a CORRUPT alarm is active.
func (s *Store) Corrupt() bool { return s.alarms().corrupt.Load() }

// alarm activates, deactivates or lists alarms (NOSPACE, CORRUPT), with
// etcd's answers: an activation answers with the alarm (also when it was
// already active), a deactivation with the alarm it cleared (nothing when
// it was not active), ACTIVATE of NONE does nothing.
func (b *batch) alarm(a *pb.AlarmRequest) (Result, error) {
	resp := &pb.AlarmResponse{}
	as := b.s.alarms()
	switch a.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = b.s.Alarms(a.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if a.Alarm == pb.AlarmType_NONE {
			break
		}
		if err := b.txn.Set(alarmKey(a.MemberID, a.Alarm), nil); err != nil {
			return Result{}, err
		}
		as.set(alarmID{a.MemberID, a.Alarm}, true)
		resp.Alarms = []*pb.AlarmMember{{MemberID: a.MemberID, Alarm: a.Alarm}}
	case pb.AlarmRequest_DEACTIVATE:
		// The batch's own view decides, so that a batch applied again after
		// a split answers as the first attempt would have.
		key := alarmKey(a.MemberID, a.Alarm)
		_, err := b.txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			break
		}
		if err != nil {
			return Result{}, err
		}
		if err := b.txn.Delete(key); err != nil {
			return Result{}, err
		}
		as.set(alarmID{a.MemberID, a.Alarm}, false)
		resp.Alarms = []*pb.AlarmMember{{MemberID: a.MemberID, Alarm: a.Alarm}}
	}
	return Result{Resp: resp}, nil
}

// capped refuses what etcd's appliers refuse while alarms are active:
// with CORRUPT, every write (Put, DeleteRange, Txn, Compaction, LeaseGrant,
// LeaseRevoke); with NOSPACE, Put, a Txn with a Put in either branch (at
// any depth), and LeaseGrant. It is meant to be called by batch.apply
// before the command runs.
func (b *batch) capped(req *pb.InternalRaftRequest) error {
	if b.s.Corrupt() && (req.Put != nil || req.DeleteRange != nil || req.Txn != nil ||
		req.Compaction != nil || req.LeaseGrant != nil || req.LeaseRevoke != nil) {
		return ErrCorrupt
	}
	if !b.s.NoSpace() {
		return nil
	}
	switch {
	case req.Put != nil, req.LeaseGrant != nil:
		return ErrNoSpace
	case req.Txn != nil && TxnHasPut(req.Txn):
		return ErrNoSpace
	}
	return nil
}

// TxnHasPut reports whether either branch of t, or of a nested Txn, puts:
// etcd's quota charges such a Txn, and refuses it while NOSPACE is active.
func TxnHasPut(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if op.GetRequestPut() != nil {
				return true
			}
			if nt := op.GetRequestTxn(); nt != nil && TxnHasPut(nt) {
				return true
			}
		}
	}
	return false
}

// replace takes other's alarms (an installed snapshot's) as its own.
func (as *alarmSet) replace(other *alarmSet) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.m = other.m
	as.publishLocked()
}
