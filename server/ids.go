package server

import (
	"crypto/sha1"
	"encoding/binary"
	"sort"

	"github.com/sett-dev/sett/replication"
)

// MemberID derives a member's ID from its peer URLs and the cluster token,
// exactly as etcd does for members of the initial cluster.
func MemberID(peerURLs []string, token string) uint64 {
	return replication.NewMemberID(peerURLs, token, nil)
}

// ClusterID derives the cluster ID from its member IDs, as etcd does.
func ClusterID(memberIDs []uint64) uint64 {
	ids := append([]uint64(nil), memberIDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}
