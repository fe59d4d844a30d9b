// Package compat holds differential tests that run the same etcd v3 API
// calls against a real etcd (bin/etcd, built by `make bin/etcd`) and against
// sett, and require byte-for-byte equal answers: every response message
// (after normalising the top-level header's cluster ID, member ID and raft
// term, which are checked separately) and every error's gRPC code and
// message.
//
// The package has no non-test code; run it with
//
//	go test ./compat/ -count=1 -v
package compat
