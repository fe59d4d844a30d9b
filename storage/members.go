package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// Member is a cluster member as the applied log recorded it. Membership is
// state like any other: it changes only by applying log entries, so every
// member holds the same list at the same applied index, and a snapshot
// carries it.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// MemberChangeType is what a membership entry does.
type MemberChangeType int

const (
	MemberAdd     MemberChangeType = iota + 1 // add Member (a learner if IsLearner)
	MemberRemove                              // remove Member.ID; its ID is never reused
	MemberUpdate                              // replace Member.ID's peer URLs
	MemberPromote                             // make learner Member.ID a voter
	// MemberRejected records that the configuration change at the entry's
	// index was refused when applied (so that a replay refuses it too).
	MemberRejected
)

// MemberChange is a committed membership change.
type MemberChange struct {
	Type   MemberChangeType
	Member Member
}

// Members are kept one record each: 'm/member/' + ID(8) holds the member
// as JSON; 'm/removed/' + ID(8) marks an ID that was removed.
var (
	memberPrefix   = []byte("m/member/")
	removedPrefix  = []byte("m/removed/")
	metaClusterV   = []byte("m/cluster-version")
	rejectedPrefix = []byte("m/conf-rejected/")
)

// ConfRejected says whether the configuration change at index was refused.
func (s *Store) ConfRejected(index uint64) bool {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(memberKey(rejectedPrefix, index))
		return err
	})
	return err == nil
}

func memberKey(prefix []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), id)
}

// Members lists the current members by ID, and the IDs ever removed.
func (s *Store) Members() (members []Member, removed []uint64, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("m/")})
		defer it.Close()
		for it.Seek(memberPrefix); it.ValidForPrefix(memberPrefix); it.Next() {
			var m Member
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return err
			}
			members = append(members, m)
		}
		for it.Seek(removedPrefix); it.ValidForPrefix(removedPrefix); it.Next() {
			removed = append(removed, binary.BigEndian.Uint64(it.Item().Key()[len(removedPrefix):]))
		}
		return nil
	})
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	return members, removed, err
}

// ClusterVersion is the last version a ClusterVersionSet entry applied.
func (s *Store) ClusterVersion() string {
	var v string
	_ = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaClusterV)
		if err != nil {
			return nil
		}
		b, err := item.ValueCopy(nil)
		v = string(b)
		return err
	})
	return v
}

// errMemberMissing is applying a change to a member that is not there: the
// proposer checked, so the log can only carry it after a race with
// another change; the entry is then a no-op, on every member alike.
var errMemberMissing = errors.New("storage: member not found")

func (b *batch) getMember(id uint64) (Member, error) {
	var m Member
	item, err := b.txn.Get(memberKey(memberPrefix, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return m, errMemberMissing
	}
	if err != nil {
		return m, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	return m, err
}

func (b *batch) putMember(m Member) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return b.txn.Set(memberKey(memberPrefix, m.ID), v)
}

// memberChange applies a membership entry.
func (b *batch) memberChange(index uint64, c *MemberChange) (Result, error) {
	if c.Type == MemberRejected {
		return Result{}, b.txn.Set(memberKey(rejectedPrefix, index), nil)
	}
	cur, err := b.getMember(c.Member.ID)
	switch {
	case errors.Is(err, errMemberMissing):
		if c.Type != MemberAdd {
			return Result{Err: errMemberMissing}, nil
		}
	case err != nil:
		return Result{}, err
	}
	switch c.Type {
	case MemberAdd:
		m := c.Member
		m.PeerURLs = append([]string(nil), m.PeerURLs...)
		return Result{}, b.putMember(m)
	case MemberRemove:
		if err := b.txn.Delete(memberKey(memberPrefix, c.Member.ID)); err != nil {
			return Result{}, err
		}
		return Result{}, b.txn.Set(memberKey(removedPrefix, c.Member.ID), nil)
	case MemberUpdate:
		cur.PeerURLs = c.Member.PeerURLs
		return Result{}, b.putMember(cur)
	case MemberPromote:
		cur.IsLearner = false
		return Result{}, b.putMember(cur)
	default:
		return Result{}, fmt.Errorf("storage: unknown member change %d", c.Type)
	}
}

// memberAttrs applies etcd's ClusterMemberAttrSet: a member publishing its
// name and client URLs once it has started.
func (b *batch) memberAttrs(r *membershippb.ClusterMemberAttrSetRequest) (Result, error) {
	cur, err := b.getMember(r.Member_ID)
	if errors.Is(err, errMemberMissing) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if r.MemberAttributes != nil {
		cur.Name = r.MemberAttributes.Name
		cur.ClientURLs = r.MemberAttributes.ClientUrls
	}
	return Result{}, b.putMember(cur)
}

func (b *batch) clusterVersion(r *membershippb.ClusterVersionSetRequest) (Result, error) {
	return Result{}, b.txn.Set(metaClusterV, []byte(r.Ver))
}

// clusterState says whether key belongs to the cluster rather than to the
// data: alarms, members, the cluster version.
func clusterState(key []byte) bool {
	return bytes.HasPrefix(key, alarmPrefix) || bytes.HasPrefix(key, memberPrefix) ||
		bytes.HasPrefix(key, removedPrefix) || bytes.Equal(key, metaClusterV)
}
