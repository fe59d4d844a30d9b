package server

import "testing"

// The IDs a default `etcd` (3.6) reports: member 8e9e05c52164694d in
// cluster cdf818194e3a8c32.
func TestIDsMatchEtcdDefaults(t *testing.T) {
	m := MemberID([]string{"http://localhost:2380"}, "etcd-cluster")
	if m != 0x8e9e05c52164694d {
		t.Fatalf("member ID %x, want 8e9e05c52164694d", m)
	}
	if c := ClusterID([]uint64{m}); c != 0xcdf818194e3a8c32 {
		t.Fatalf("cluster ID %x, want cdf818194e3a8c32", c)
	}
}
