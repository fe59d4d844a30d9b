// Package clustertest runs multi-member clusters of etcd or sett as
// processes and checks them under faults: members killed with SIGKILL and
// restarted, members added and removed, partitions between members (see
// Netns), all under a concurrent client workload whose every operation is
// recorded (History) and checked for linearizability with porcupine
// (CheckLinearizable), while watchers on every member record what they are
// sent and are checked against the cluster's final revision history
// (CheckWatches).
//
// The same scenarios run against the reference etcd and against sett: both
// take etcd's clustering flags, so a Kind differs only in its binary.
//
//	go test ./clustertest/ -run 'TestCluster/etcd/leader-partition'
//	SETT_LONG_TESTS=1 go test -timeout 0 ./clustertest/   # longer runs, 5-member faults
//
// Partitions need network namespaces, hence root and iproute2.
package clustertest
