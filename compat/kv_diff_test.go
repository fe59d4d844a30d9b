package compat

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/storage"
)

// TestKVDiff runs the KV and lease scenarios against one etcd and one sett,
// in order, comparing every answer.
func TestKVDiff(t *testing.T) {
	p := newPair(t)
	e := newEnv(t, p, "/kv/")
	e.Range(&pb.RangeRequest{Key: e.k("probe")})
	t.Run("HeaderIDsAtStart", func(t *testing.T) { p.checkIDs(t) })
	runScenarios(t, p, "kv", kvScenarios)
	t.Run("HeaderIDsAtEnd", func(t *testing.T) { p.checkIDs(t) })
}

var kvScenarios = []scenario{
	{"01-range-basic", scRangeBasic},
	{"02-range-sort", scRangeSort},
	{"03-range-sort-many", scRangeSortMany},
	{"04-range-flags-filters", scRangeFlagsFilters},
	{"05-range-revisions", scRangeRevisions},
	{"06-range-invalid", scRangeInvalid},
	{"07-put", scPut},
	{"08-lease", scLease},
	{"08-lease-server-chosen-id", scLeaseServerChosenID},
	{"09-delete", scDelete},
	{"10-txn-compare", scTxnCompare},
	{"11-txn-branches", scTxnBranches},
	{"12-txn-nested-headers", scTxnNestedHeaders},
	{"13-txn-errors", scTxnErrors},
	{"14-txn-max-ops", scTxnMaxOps},
	{"15-txn-overlaps", scTxnOverlaps},
	{"16-compact", scCompact},
	{"17-request-size", scRequestSize},
	{"17-request-size-edge", scRequestSizeEdge},
	{"18-k8s-crud", scK8sCRUD},
	{"19-k8s-compaction", scK8sCompaction},
	{"20-k8s-pagination", scK8sPagination},
	{"21-bulk-delete", scBulkDelete},
	{"21-bulk-delete-small-keys", scBulkDeleteSmall},
	{"22-bulk-revoke", scBulkRevoke},
	{"23-long-key-60000", func(e *env) { scLongKey(e, 60000) }},
	{"24-long-key-max", func(e *env) { scLongKey(e, storage.MaxKeyBytes-len(e.k(""))) }},
	{"25-long-key-refused", scLongKeyRefused},
	{"26-restart", scRestart},
}

// Request builders.

var fromKey = []byte{0}

func prefixEnd(b []byte) []byte { return []byte(clientv3.GetPrefixRangeEnd(string(b))) }

func rangeOp(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func putOp(r *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}}
}

func delOp(r *pb.DeleteRangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}

func txnOp(r *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
}

func cmpValue(key []byte, res pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_VALUE, Result: res, TargetUnion: &pb.Compare_Value{Value: []byte(v)}}
}

func cmpVersion(key []byte, res pb.Compare_CompareResult, n int64) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_VERSION, Result: res, TargetUnion: &pb.Compare_Version{Version: n}}
}

func cmpCreate(key []byte, res pb.Compare_CompareResult, n int64) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_CREATE, Result: res, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: n}}
}

func cmpMod(key []byte, res pb.Compare_CompareResult, n int64) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_MOD, Result: res, TargetUnion: &pb.Compare_ModRevision{ModRevision: n}}
}

func cmpLease(key []byte, res pb.Compare_CompareResult, n int64) *pb.Compare {
	return &pb.Compare{Key: key, Target: pb.Compare_LEASE, Result: res, TargetUnion: &pb.Compare_Lease{Lease: n}}
}

var compareResults = []pb.Compare_CompareResult{pb.Compare_EQUAL, pb.Compare_GREATER, pb.Compare_LESS, pb.Compare_NOT_EQUAL}

var (
	sortOrders  = []pb.RangeRequest_SortOrder{pb.RangeRequest_NONE, pb.RangeRequest_ASCEND, pb.RangeRequest_DESCEND}
	sortTargets = []pb.RangeRequest_SortTarget{pb.RangeRequest_KEY, pb.RangeRequest_VERSION, pb.RangeRequest_CREATE, pb.RangeRequest_MOD, pb.RangeRequest_VALUE}
)

// put writes key=value and requires etcd to accept it.
func (e *env) put(key, value string) *pb.PutResponse {
	e.t.Helper()
	resp, err := e.Put(&pb.PutRequest{Key: e.k(key), Value: []byte(value)})
	e.wantOK(err)
	return resp
}

// putAll writes the pairs (key, value, key, value, …) in one Txn, so they
// share create and mod revisions.
func (e *env) putAll(kv ...string) *pb.TxnResponse {
	e.t.Helper()
	var ops []*pb.RequestOp
	for i := 0; i+1 < len(kv); i += 2 {
		ops = append(ops, putOp(&pb.PutRequest{Key: e.k(kv[i]), Value: []byte(kv[i+1])}))
	}
	resp, err := e.Txn(&pb.TxnRequest{Success: ops})
	e.wantOK(err)
	return resp
}

// get is a plain Range of one key or of [key, end).
func (e *env) get(key []byte, end []byte) *pb.RangeResponse {
	e.t.Helper()
	resp, err := e.Range(&pb.RangeRequest{Key: key, RangeEnd: end})
	e.wantOK(err)
	return resp
}

// ---------------------------------------------------------------- Range

func scRangeBasic(e *env) {
	e.put("a", "1")
	e.put("b", "2")
	e.put("c", "3")
	e.put("d/1", "x")
	e.put("d/2", "y")
	e.put("d/3", "z")
	e.put("d0", "after-prefix")
	e.put("e", "5")

	e.get(e.k("a"), nil)                   // single key
	e.get(e.k("zz-missing"), nil)          // missing key
	e.get(e.k("d"), nil)                   // exact key "d" does not exist; must not match "d/…"
	e.get(e.k("d/"), prefixEnd(e.k("d/"))) // prefix
	e.get(e.k(""), prefixEnd(e.k("")))     // whole scenario prefix
	e.get(e.k("d/2"), fromKey)             // from key
	e.get(e.k("c"), e.k("b"))              // end < key: empty
	e.get(e.k("c"), e.k("c"))              // end == key: empty
	e.get(e.k("b"), e.k("d/2"))            // [b, d/2)
	e.get(e.k("b"), append(e.k("b"), 0))   // [b, b\x00): exactly b
	e.get([]byte{0}, fromKey)              // every key in the store

	for _, limit := range []int64{-1, 0, 1, 2, 3, 4, 100} {
		e.Range(&pb.RangeRequest{Key: e.k("d/"), RangeEnd: prefixEnd(e.k("d/")), Limit: limit})
		e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Limit: limit})
	}
	e.Range(&pb.RangeRequest{Key: e.k("a"), Limit: 1})
	e.Range(&pb.RangeRequest{Key: e.k("zz-missing"), Limit: 1})
	e.Range(&pb.RangeRequest{Key: e.k("d/2"), RangeEnd: fromKey, Limit: 2})

	// Keys at the very end of the key space: the prefix end of "\xff…" is
	// "\x00" (every key from there on).
	for _, k := range []string{"\xfe", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"} {
		_, err := e.Put(&pb.PutRequest{Key: []byte(k), Value: []byte("end")})
		e.wantOK(err)
	}
	e.get([]byte("\xff"), prefixEnd([]byte("\xff")))
	e.get([]byte("\xff\xff"), prefixEnd([]byte("\xff\xff")))
	e.get([]byte("\xfe"), fromKey)
	e.get([]byte("\xfe"), []byte("\xff\xff"))
	e.get([]byte("\xff\xff"), nil)
	e.Range(&pb.RangeRequest{Key: []byte("\xfe"), RangeEnd: fromKey, Limit: 2, SortOrder: pb.RangeRequest_DESCEND})
	e.Delete(&pb.DeleteRangeRequest{Key: []byte("\xfe"), RangeEnd: fromKey, PrevKv: true})
	e.get([]byte("\xfe"), fromKey)
	// A key with a zero byte sorts right after its prefix.
	e.put("z", "1")
	e.put("z\x00", "2")
	e.put("z\x00\x00", "3")
	e.put("z\x01", "4")
	e.get(e.k("z"), prefixEnd(e.k("z")))
	e.get(e.k("z"), nil)
	e.get(e.k("z\x00"), nil)
	e.get(e.k("z"), e.k("z\x00\x00"))
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("z\x00")})
	e.get(e.k("z"), prefixEnd(e.k("z")))
	e.Range(&pb.RangeRequest{Key: e.k("z"), RangeEnd: prefixEnd(e.k("z")), Revision: e.rev() - 1})
}

// sortFixture writes keys whose versions, create and mod revisions and
// values tie in several ways, under sub.
func (e *env) sortFixture(sub string) {
	e.t.Helper()
	e.putAll(sub+"a", "v2", sub+"b", "v1", sub+"c", "v2") // same create/mod revision, version 1
	e.put(sub+"d", "v1")
	e.put(sub+"a", "v3") // version 2
	e.putAll(sub+"e", "v1", sub+"f", "v3")
	e.put(sub+"b", "v2") // version 2
	e.put(sub+"g", "")   // empty value sorts first
	e.put(sub+"h", "v1")
	e.put(sub+"h", "v1") // version 2, same value
	e.put(sub+"h", "v0") // version 3
}

func (e *env) sortMatrix(key, end []byte, limits []int64) {
	e.t.Helper()
	for _, o := range sortOrders {
		for _, tg := range sortTargets {
			for _, l := range limits {
				e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, SortOrder: o, SortTarget: tg, Limit: l})
			}
		}
	}
}

func scRangeSort(e *env) {
	e.sortFixture("s/")
	e.sortMatrix(e.k("s/"), prefixEnd(e.k("s/")), []int64{0, 1, 3})
	// Sorting with keys_only and count_only.
	e.Range(&pb.RangeRequest{Key: e.k("s/"), RangeEnd: prefixEnd(e.k("s/")), SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VALUE, KeysOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k("s/"), RangeEnd: prefixEnd(e.k("s/")), SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VALUE, CountOnly: true})
	// Sorting a past revision.
	past := e.rev() - 3
	e.Range(&pb.RangeRequest{Key: e.k("s/"), RangeEnd: prefixEnd(e.k("s/")), SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VERSION, Revision: past})
}

// scRangeSortMany sorts more than 12 results with many ties: etcd uses the
// (unstable) sort.Sort, whose tie order changes past 12 elements.
func scRangeSortMany(e *env) {
	var kv []string
	for i := range 30 {
		kv = append(kv, fmt.Sprintf("m/%02d", i), fmt.Sprintf("v%d", i%3))
		if len(kv) == 20 {
			e.putAll(kv...)
			kv = nil
		}
	}
	e.putAll(kv...)
	for i := 0; i < 30; i += 4 {
		e.put(fmt.Sprintf("m/%02d", i), fmt.Sprintf("v%d", i%2))
	}
	for i := 0; i < 30; i += 7 {
		e.put(fmt.Sprintf("m/%02d", i), "v1")
	}
	e.sortMatrix(e.k("m/"), prefixEnd(e.k("m/")), []int64{0, 5, 13})
}

func scRangeFlagsFilters(e *env) {
	e.sortFixture("f/")
	key, end := e.k("f/"), prefixEnd(e.k("f/"))
	cur := e.rev()
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Serializable: true})
	e.Range(&pb.RangeRequest{Key: e.k("f/a"), Serializable: true})
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, KeysOnly: true})
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, KeysOnly: true, Limit: 2})
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true})
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true, Limit: 2})
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true, KeysOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k("f/zz"), CountOnly: true})
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, KeysOnly: true, Serializable: true, Limit: 1})

	for _, f := range []pb.RangeRequest{
		{MinModRevision: cur - 3},
		{MaxModRevision: cur - 3},
		{MinCreateRevision: cur - 4},
		{MaxCreateRevision: cur - 4},
		{MinModRevision: cur - 5, MaxModRevision: cur - 1},
		{MinCreateRevision: cur - 6, MaxCreateRevision: cur - 2, MinModRevision: cur - 4},
		{MinModRevision: cur + 10},
		{MaxModRevision: -1},
		{MinModRevision: -1},
	} {
		for _, limit := range []int64{0, 1, 2} {
			for _, extra := range []pb.RangeRequest{{}, {CountOnly: true}, {KeysOnly: true}, {SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD}} {
				r := f
				r.Key, r.RangeEnd, r.Limit = key, end, limit
				r.CountOnly, r.KeysOnly, r.SortOrder, r.SortTarget = extra.CountOnly, extra.KeysOnly, extra.SortOrder, extra.SortTarget
				e.Range(&r)
			}
		}
	}
}

func scRangeRevisions(e *env) {
	r1 := e.put("a", "1").Header.Revision
	e.put("b", "1")
	r3 := e.put("a", "2").Header.Revision
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("b")})
	e.put("c", "1")
	e.put("b", "2")
	key, end := e.k(""), prefixEnd(e.k(""))
	for _, rev := range []int64{r1 - 1, r1, r1 + 1, r3, r3 + 1, r3 + 2, e.rev(), 0, -1, -100} {
		e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev})
		e.Range(&pb.RangeRequest{Key: e.k("a"), Revision: rev})
		e.Range(&pb.RangeRequest{Key: e.k("b"), Revision: rev, Limit: 1})
		e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev, CountOnly: true})
		e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev, Limit: 1, Serializable: true})
	}
	// Future revisions.
	for _, rev := range []int64{e.rev() + 1, e.rev() + 1000} {
		_, err := e.Range(&pb.RangeRequest{Key: e.k("a"), Revision: rev})
		e.wantErr(err, rpctypes.ErrGRPCFutureRev)
		e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev, Serializable: true})
	}
	// Compacted revisions: compact to r3 (first compaction of this pair
	// unless an earlier scenario compacted further).
	_, err := e.Compact(&pb.CompactionRequest{Revision: r3})
	e.wantOK(err)
	for _, rev := range []int64{r1, r3 - 1, r3, r3 + 1, 0, -1} {
		e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev})
		e.Range(&pb.RangeRequest{Key: e.k("b"), Revision: rev})
		e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: rev, CountOnly: true})
	}
	_, err = e.Range(&pb.RangeRequest{Key: e.k("a"), Revision: r1})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
}

func scRangeInvalid(e *env) {
	e.put("a", "1")
	_, err := e.Range(&pb.RangeRequest{Key: nil})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
	e.Range(&pb.RangeRequest{Key: []byte{}, RangeEnd: fromKey})
	e.Range(&pb.RangeRequest{Key: nil, RangeEnd: e.k("b"), Revision: -5, SortOrder: 99})
	for _, bad := range []pb.RangeRequest{
		{SortOrder: 99},
		{SortOrder: -1},
		{SortOrder: 3},
		{SortTarget: 99},
		{SortTarget: 5},
		{SortTarget: -1},
		{SortOrder: 99, SortTarget: 99},
		{SortOrder: 99, Revision: 1 << 40}, // validation before the revision check
	} {
		r := bad
		r.Key = e.k("a")
		_, err := e.Range(&r)
		e.wantErr(err, rpctypes.ErrGRPCInvalidSortOption)
	}
	// An empty key is checked before the sort options.
	_, err = e.Range(&pb.RangeRequest{SortOrder: 99})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
}

// ---------------------------------------------------------------- Put

func scPut(e *env) {
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("1")})
	e.Put(&pb.PutRequest{Key: e.k("new"), Value: []byte("1"), PrevKv: true}) // no previous kv
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("2"), PrevKv: true})
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("3")})
	e.get(e.k("a"), nil) // version 3, create revision kept
	e.Put(&pb.PutRequest{Key: e.k("empty"), Value: nil})
	e.Put(&pb.PutRequest{Key: e.k("empty"), Value: []byte{}, PrevKv: true})
	e.Put(&pb.PutRequest{Key: e.k("bin"), Value: []byte{0, 1, 2, 0xff}})
	e.Put(&pb.PutRequest{Key: append(e.k("bin"), 0xff, 0), Value: []byte("x")})

	// Delete, then put again: version restarts at 1, new create revision.
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("a")})
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("again"), PrevKv: true})
	e.get(e.k("a"), nil)

	// ignore_value / ignore_lease on an existing key.
	e.Put(&pb.PutRequest{Key: e.k("a"), IgnoreValue: true})
	e.Put(&pb.PutRequest{Key: e.k("a"), IgnoreValue: true, PrevKv: true})
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), IgnoreLease: true, PrevKv: true})
	e.Put(&pb.PutRequest{Key: e.k("a"), IgnoreValue: true, IgnoreLease: true})
	e.get(e.k("a"), nil)

	// On a missing key: "key not found".
	for _, r := range []*pb.PutRequest{
		{Key: e.k("missing"), IgnoreValue: true},
		{Key: e.k("missing"), Value: []byte("v"), IgnoreLease: true},
		{Key: e.k("missing"), IgnoreValue: true, IgnoreLease: true, PrevKv: true},
	} {
		_, err := e.Put(r)
		e.wantErr(err, rpctypes.ErrGRPCKeyNotFound)
	}
	// Deleted key: also not found.
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("new")})
	_, err := e.Put(&pb.PutRequest{Key: e.k("new"), IgnoreValue: true})
	e.wantErr(err, rpctypes.ErrGRPCKeyNotFound)

	// Static validation.
	_, err = e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), IgnoreValue: true})
	e.wantErr(err, rpctypes.ErrGRPCValueProvided)
	_, err = e.Put(&pb.PutRequest{Key: e.k("missing"), Value: []byte("v"), IgnoreValue: true})
	e.wantErr(err, rpctypes.ErrGRPCValueProvided)
	_, err = e.Put(&pb.PutRequest{Key: e.k("a"), Lease: 12345, IgnoreLease: true})
	e.wantErr(err, rpctypes.ErrGRPCLeaseProvided)
	_, err = e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), Lease: 12345, IgnoreValue: true, IgnoreLease: true})
	e.wantErr(err, rpctypes.ErrGRPCValueProvided)
	_, err = e.Put(&pb.PutRequest{Key: nil, Value: []byte("v")})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
	_, err = e.Put(&pb.PutRequest{Key: nil, Value: []byte("v"), IgnoreValue: true})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)

	// Unknown lease.
	_, err = e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), Lease: 0x7e57_0001})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	// etcd's Put looks the lease up before the previous key (its Txn does
	// the opposite, see scTxnErrors).
	_, err = e.Put(&pb.PutRequest{Key: e.k("missing"), IgnoreValue: true, Lease: 0x7e57_0001})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	e.get(e.k(""), prefixEnd(e.k("")))
}

// ---------------------------------------------------------------- Lease

func scLease(e *env) {
	const (
		l1   = 0x1001
		l2   = 0x1002
		lmin = 0x1003
		lbig = 0x1004
		lneg = -0x1005
		l0   = 0x1006
	)
	_, err := e.Grant(&pb.LeaseGrantRequest{ID: l1, TTL: 100})
	e.wantOK(err)
	e.Grant(&pb.LeaseGrantRequest{ID: l2, TTL: 100})
	_, err = e.Grant(&pb.LeaseGrantRequest{ID: l1, TTL: 100})
	e.wantErr(err, rpctypes.ErrGRPCLeaseExist)
	_, err = e.Grant(&pb.LeaseGrantRequest{ID: l1, TTL: 50})
	e.wantErr(err, rpctypes.ErrGRPCLeaseExist)
	_, err = e.Grant(&pb.LeaseGrantRequest{ID: 0x1fff, TTL: 9000000001})
	e.wantErr(err, rpctypes.ErrGRPCLeaseTTLTooLarge)
	_, err = e.Grant(&pb.LeaseGrantRequest{ID: l1, TTL: 9000000001}) // existing and too large
	e.wantErr(err, rpctypes.ErrGRPCLeaseTTLTooLarge)
	e.Grant(&pb.LeaseGrantRequest{ID: lbig, TTL: 9000000000})
	e.Revoke(&pb.LeaseRevokeRequest{ID: lbig})

	// Below the minimum TTL: raised to it. Revoked at once, before etcd
	// (which expires leases; sett does not yet) could expire them.
	for _, ttl := range []int64{1, 0, -7} {
		_, err = e.Grant(&pb.LeaseGrantRequest{ID: lmin, TTL: ttl})
		e.wantOK(err)
		e.Revoke(&pb.LeaseRevokeRequest{ID: lmin})
	}
	// A negative ID is a valid client-chosen ID.
	e.Grant(&pb.LeaseGrantRequest{ID: lneg, TTL: 100})
	e.Put(&pb.PutRequest{Key: e.k("neg"), Value: []byte("v"), Lease: lneg})
	e.get(e.k("neg"), nil)
	e.Revoke(&pb.LeaseRevokeRequest{ID: lneg})
	e.get(e.k("neg"), nil)

	// Keys attached to l1.
	e.Put(&pb.PutRequest{Key: e.k("k1"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("k2"), Value: []byte("v"), Lease: l1, PrevKv: true})
	e.Put(&pb.PutRequest{Key: e.k("k3"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("k3"), Value: []byte("w")}) // detached from l1
	e.Put(&pb.PutRequest{Key: e.k("k4"), Value: []byte("v"), Lease: l1})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("k4")})
	e.Put(&pb.PutRequest{Key: e.k("k4"), Value: []byte("v")}) // a new key, no lease
	e.Put(&pb.PutRequest{Key: e.k("k5"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("k5"), Value: []byte("w"), IgnoreLease: true, PrevKv: true}) // keeps l1
	e.Put(&pb.PutRequest{Key: e.k("k6"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("k6"), Value: []byte("v"), Lease: l2}) // moved to l2
	e.Put(&pb.PutRequest{Key: e.k("k7"), Value: []byte("v"), Lease: l2})
	e.Put(&pb.PutRequest{Key: e.k("k7"), IgnoreValue: true, Lease: l1}) // moved to l1, value kept
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		putOp(&pb.PutRequest{Key: e.k("t1"), Value: []byte("v"), Lease: l1}),
		putOp(&pb.PutRequest{Key: e.k("t2"), Value: []byte("v"), Lease: l2}),
	}})
	e.get(e.k(""), prefixEnd(e.k("")))
	e.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpLease(e.k("k1"), pb.Compare_EQUAL, l1), cmpLease(e.k("k3"), pb.Compare_EQUAL, 0)},
		Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("k1")})},
	})

	// Revoking l1 deletes k1, k2, k5, k7, t1 in one revision.
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: l1})
	e.wantOK(err)
	e.get(e.k(""), prefixEnd(e.k("")))
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: l1})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: 0x1777})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	e.Revoke(&pb.LeaseRevokeRequest{ID: 0})
	_, err = e.Put(&pb.PutRequest{Key: e.k("k1"), Value: []byte("v"), Lease: l1})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)

	// Keys of l2 were deleted by hand: revoking deletes nothing, so the
	// revision does not move.
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("k6")})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("t2")})
	e.Revoke(&pb.LeaseRevokeRequest{ID: l2})
	// A lease without keys.
	e.Grant(&pb.LeaseGrantRequest{ID: l0, TTL: 100})
	e.Revoke(&pb.LeaseRevokeRequest{ID: l0})
	// The ID may be granted again after a revoke.
	e.Grant(&pb.LeaseGrantRequest{ID: l0, TTL: 200})
	e.Put(&pb.PutRequest{Key: e.k("k8"), Value: []byte("v"), Lease: l0})
	e.Revoke(&pb.LeaseRevokeRequest{ID: l0})
	e.get(e.k(""), prefixEnd(e.k("")))
}

// scLeaseServerChosenID grants leases with ID 0: the server picks the ID
// from its request ID generator, which etcd builds as the member ID's low
// 16 bits, then 40 bits of milliseconds and an 8-bit counter (top bit
// cleared for lease IDs). The low 48 bits depend on the clock; the high 16
// must match.
func scLeaseServerChosenID(e *env) {
	var mu sync.Mutex
	ids := map[string][]int64{}
	for range 3 {
		e.ctx = "server-chosen lease ID, compared >> 48"
		call(e, "LeaseGrant", &pb.LeaseGrantRequest{TTL: 100}, func(ctx context.Context, s *server) (*pb.LeaseGrantResponse, error) {
			resp, err := s.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 100})
			if err == nil {
				mu.Lock()
				ids[s.kind] = append(ids[s.kind], resp.ID)
				mu.Unlock()
				resp.ID >>= 48
			}
			return resp, err
		})
	}
	e.ctx = ""
	for kind, l := range ids {
		for i, id := range l {
			if id <= 0 {
				e.t.Errorf("%s chose lease ID %d", kind, id)
			}
			if i > 0 && id == l[i-1] {
				e.t.Errorf("%s chose lease ID %x twice", kind, id)
			}
		}
	}
	e.t.Logf("server-chosen lease IDs: etcd %x, sett %x", ids["etcd"], ids["sett"])
	for i := range min(len(ids["etcd"]), len(ids["sett"])) {
		call(e, "LeaseRevoke", &pb.LeaseRevokeRequest{}, func(ctx context.Context, s *server) (*pb.LeaseRevokeResponse, error) {
			return s.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: ids[s.kind][i]})
		})
	}
}

// ---------------------------------------------------------------- DeleteRange

func scDelete(e *env) {
	for _, k := range []string{"a", "b", "c", "d/1", "d/2", "d/3", "e", "f", "g", "h", "i"} {
		e.put(k, "v-"+k)
	}
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("a")})
	rev := e.rev()
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("a")}) // already deleted
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("missing"), PrevKv: true})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("c"), RangeEnd: e.k("b")}) // end < key
	if e.rev() != rev {
		e.t.Errorf("etcd's revision moved on deletes of nothing")
	}
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("b"), PrevKv: true})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("c"), RangeEnd: e.k("d/3"), PrevKv: true}) // c, d/1, d/2
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("d/"), RangeEnd: prefixEnd(e.k("d/"))})    // d/3
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("d/"), RangeEnd: prefixEnd(e.k("d/"))})    // nothing left
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("e"), RangeEnd: e.k("g"), PrevKv: true})   // e, f
	e.get(e.k(""), prefixEnd(e.k("")))
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("h"), RangeEnd: fromKey, PrevKv: true}) // h, i and every later key
	e.get(e.k(""), prefixEnd(e.k("")))
	e.get(e.k("g"), nil)
	_, err := e.Delete(&pb.DeleteRangeRequest{Key: nil})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
	_, err = e.Delete(&pb.DeleteRangeRequest{Key: nil, RangeEnd: e.k("x")})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
	// Put again after a range delete: version 1.
	e.put("c", "again")
	e.Put(&pb.PutRequest{Key: e.k("d/1"), Value: []byte("again"), PrevKv: true})
	e.get(e.k(""), prefixEnd(e.k("")))
	// Deleting the same key in many revisions, then reading the history.
	for i := range 3 {
		e.put("h", fmt.Sprint(i))
		e.Delete(&pb.DeleteRangeRequest{Key: e.k("h"), PrevKv: true})
	}
	for back := int64(0); back < 6; back++ {
		e.Range(&pb.RangeRequest{Key: e.k("h"), Revision: e.rev() - back})
	}
}

// ---------------------------------------------------------------- Txn

func scTxnCompare(e *env) {
	const lease = 0x2001
	_, err := e.Grant(&pb.LeaseGrantRequest{ID: lease, TTL: 100})
	e.wantOK(err)
	e.put("a", "m")
	e.put("a", "m")                                                        // version 2
	e.Put(&pb.PutRequest{Key: e.k("b"), Value: []byte("m"), Lease: lease}) // version 1
	e.put("c", "z")
	e.put("empty", "")
	e.put("deleted", "m") // a tombstone in the ranges below
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("deleted")})
	ra := e.get(e.k("a"), nil).Kvs[0]

	then := []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("a")})}
	els := []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("c")})}
	try := func(cs ...*pb.Compare) {
		e.t.Helper()
		e.Txn(&pb.TxnRequest{Compare: cs, Success: then, Failure: els})
	}
	keys := [][]byte{e.k("a"), e.k("b"), e.k("empty"), e.k("missing"), e.k("deleted")}
	for _, key := range keys {
		for _, res := range compareResults {
			for _, v := range []string{"", "a", "m", "n", "z"} {
				try(cmpValue(key, res, v))
			}
			for _, n := range []int64{-1, 0, 1, 2, 3} {
				try(cmpVersion(key, res, n))
			}
			for _, n := range []int64{0, ra.CreateRevision - 1, ra.CreateRevision, ra.CreateRevision + 1} {
				try(cmpCreate(key, res, n))
			}
			for _, n := range []int64{0, ra.ModRevision - 1, ra.ModRevision, ra.ModRevision + 1} {
				try(cmpMod(key, res, n))
			}
			for _, n := range []int64{0, lease, lease + 1} {
				try(cmpLease(key, res, n))
			}
		}
	}
	// Compares over ranges: every key in the range must satisfy it.
	all, allEnd := e.k(""), prefixEnd(e.k(""))
	for _, c := range []*pb.Compare{
		cmpValue(all, pb.Compare_EQUAL, "m"),
		cmpValue(all, pb.Compare_GREATER, ""),
		cmpValue(all, pb.Compare_LESS, "zz"),
		cmpValue(all, pb.Compare_NOT_EQUAL, "q"),
		cmpVersion(all, pb.Compare_GREATER, 0),
		cmpVersion(all, pb.Compare_EQUAL, 1),
		cmpCreate(all, pb.Compare_LESS, e.rev()+1),
		cmpMod(all, pb.Compare_GREATER, ra.ModRevision),
		cmpLease(all, pb.Compare_EQUAL, 0),
	} {
		for _, end := range [][]byte{allEnd, fromKey, e.k("b\x00"), e.k("c"), e.k("aa"), e.k("zz-none"), e.k("0")} {
			c2 := *c
			c2.RangeEnd = end
			try(&c2)
		}
	}
	// Empty range (no key in [x, y)) behaves like a missing key.
	try(&pb.Compare{Key: e.k("x"), RangeEnd: e.k("y"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 0}})
	try(&pb.Compare{Key: e.k("x"), RangeEnd: e.k("y"), Target: pb.Compare_VALUE, Result: pb.Compare_NOT_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte("q")}})

	// Several compares: all must hold.
	try(cmpValue(e.k("a"), pb.Compare_EQUAL, "m"), cmpVersion(e.k("a"), pb.Compare_EQUAL, 2))
	try(cmpValue(e.k("a"), pb.Compare_EQUAL, "m"), cmpVersion(e.k("a"), pb.Compare_EQUAL, 3))
	try(cmpVersion(e.k("missing"), pb.Compare_EQUAL, 0), cmpMod(e.k("c"), pb.Compare_GREATER, 0))

	// Odd wire shapes: a target union that does not match the target, none
	// at all, unknown result and target values.
	try(&pb.Compare{Key: e.k("a"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: ra.ModRevision}})
	try(&pb.Compare{Key: e.k("a"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL})
	try(&pb.Compare{Key: e.k("a"), Target: pb.Compare_VALUE, Result: pb.Compare_GREATER})
	try(&pb.Compare{Key: e.k("a"), Target: pb.Compare_VERSION, Result: 9, TargetUnion: &pb.Compare_Version{Version: 5}})
	try(&pb.Compare{Key: e.k("a"), Target: 9, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 5}})
	try(&pb.Compare{Key: e.k("a"), Target: 9, Result: pb.Compare_NOT_EQUAL})
	// An empty compare key is rejected.
	_, err = e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion(nil, pb.Compare_EQUAL, 0)}, Success: then})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
	_, err = e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{{RangeEnd: fromKey, Target: pb.Compare_VERSION}}})
	e.wantErr(err, rpctypes.ErrGRPCEmptyKey)
	e.Revoke(&pb.LeaseRevokeRequest{ID: lease})
}

func scTxnBranches(e *env) {
	e.put("a", "1")
	e.put("b", "1")
	e.put("p/1", "x")
	e.put("p/2", "y")
	mod := e.get(e.k("a"), nil).Kvs[0].ModRevision

	yes := cmpMod(e.k("a"), pb.Compare_EQUAL, mod)
	no := cmpMod(e.k("a"), pb.Compare_NOT_EQUAL, mod)
	branch := func(tag string) []*pb.RequestOp {
		return []*pb.RequestOp{
			rangeOp(&pb.RangeRequest{Key: e.k("p/"), RangeEnd: prefixEnd(e.k("p/"))}),
			putOp(&pb.PutRequest{Key: e.k("w/" + tag), Value: []byte(tag), PrevKv: true}),
			delOp(&pb.DeleteRangeRequest{Key: e.k("gone/"), RangeEnd: prefixEnd(e.k("gone/")), PrevKv: true}),
			rangeOp(&pb.RangeRequest{Key: e.k("w/"), RangeEnd: prefixEnd(e.k("w/"))}),
		}
	}
	for _, c := range []*pb.Compare{yes, no} {
		e.put("gone/1", "g")
		e.put("gone/2", "g")
		e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{c}, Success: branch("then"), Failure: branch("else")})
	}
	// No compares: success.
	e.Txn(&pb.TxnRequest{Success: branch("none")})
	// Empty Txn and empty branches.
	e.Txn(&pb.TxnRequest{})
	e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{no}})
	e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Failure: branch("else2")})
	e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: branch("then2")})

	// Read-only Txns (only ranges), serializable or not.
	ro := []*pb.RequestOp{
		rangeOp(&pb.RangeRequest{Key: e.k("a")}),
		rangeOp(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Limit: 2, SortOrder: pb.RangeRequest_DESCEND}),
		rangeOp(&pb.RangeRequest{Key: e.k("a"), Revision: mod - 1}),
		rangeOp(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), CountOnly: true}),
	}
	e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Success: ro, Failure: ro[:1]})
	e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: ro, Failure: ro[:1]})
	sro := []*pb.RequestOp{
		rangeOp(&pb.RangeRequest{Key: e.k("a"), Serializable: true}),
		rangeOp(&pb.RangeRequest{Key: e.k("p/"), RangeEnd: prefixEnd(e.k("p/")), Serializable: true, KeysOnly: true}),
	}
	e.Txn(&pb.TxnRequest{Success: sro, Failure: sro})

	// A Txn with a write op whose taken branch only reads.
	e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: branch("then3"), Failure: ro})
	// A Txn whose writes change nothing: the revision must not move.
	rev := e.rev()
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		delOp(&pb.DeleteRangeRequest{Key: e.k("missing")}),
		delOp(&pb.DeleteRangeRequest{Key: e.k("missing/"), RangeEnd: prefixEnd(e.k("missing/")), PrevKv: true}),
		rangeOp(&pb.RangeRequest{Key: e.k("a")}),
	}})
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp(&pb.DeleteRangeRequest{Key: e.k("missing")})}})
	e.get(e.k("a"), nil)
	if e.rev() != rev {
		e.t.Errorf("etcd's revision moved on a Txn that deleted nothing: %d -> %d", rev, e.rev())
	}

	// Nested Txns, two levels, every path.
	for _, outer := range []*pb.Compare{yes, no} {
		for _, inner := range []*pb.Compare{yes, no} {
			for _, inner2 := range []*pb.Compare{yes, no} {
				lvl2 := &pb.TxnRequest{
					Compare: []*pb.Compare{inner2},
					Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("n2/then"), Value: []byte("v")}), rangeOp(&pb.RangeRequest{Key: e.k("n2/"), RangeEnd: prefixEnd(e.k("n2/"))})},
					Failure: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("n2/else"), Value: []byte("v"), PrevKv: true}), delOp(&pb.DeleteRangeRequest{Key: e.k("n2/then"), PrevKv: true})},
				}
				lvl1 := &pb.TxnRequest{
					Compare: []*pb.Compare{inner},
					Success: []*pb.RequestOp{txnOp(lvl2), putOp(&pb.PutRequest{Key: e.k("n1/then"), Value: []byte("v")})},
					Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("n1/"), RangeEnd: prefixEnd(e.k("n1/"))}), txnOp(&pb.TxnRequest{})},
				}
				e.Txn(&pb.TxnRequest{
					Compare: []*pb.Compare{outer},
					Success: []*pb.RequestOp{txnOp(lvl1), rangeOp(&pb.RangeRequest{Key: e.k("n"), RangeEnd: e.k("o")})},
					Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("a")}), txnOp(lvl1), txnOp(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("b")})}})},
				})
			}
		}
	}
	// Read-only nested Txn.
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: ro, Failure: ro})}})
	e.get(e.k(""), prefixEnd(e.k("")))
}

// scTxnNestedHeaders checks the revisions of the responses inside a Txn:
// ranges before and after writes of the same Txn, and nested Txns.
func scTxnNestedHeaders(e *env) {
	e.put("a", "1")
	e.put("b", "1")
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		rangeOp(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k(""))}),
		delOp(&pb.DeleteRangeRequest{Key: e.k("missing")}), // before any write: old revision
		putOp(&pb.PutRequest{Key: e.k("a"), Value: []byte("2"), PrevKv: true}),
		rangeOp(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k(""))}), // sees the put
		delOp(&pb.DeleteRangeRequest{Key: e.k("missing2")}),                   // after a write: new revision
		delOp(&pb.DeleteRangeRequest{Key: e.k("b"), PrevKv: true}),
		rangeOp(&pb.RangeRequest{Key: e.k("b")}),
		rangeOp(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: e.rev()}),
		rangeOp(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), CountOnly: true}),
		txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{
			rangeOp(&pb.RangeRequest{Key: e.k("a")}),
			putOp(&pb.PutRequest{Key: e.k("c"), Value: []byte("1")}),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("c")})}}),
		}}),
		rangeOp(&pb.RangeRequest{Key: e.k("c")}),
	}})
	// Nested Txn first, writes in it; outer ranges after.
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		txnOp(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion(e.k("c"), pb.Compare_EQUAL, 1)}, Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("d"), Value: []byte("1")})}}),
		rangeOp(&pb.RangeRequest{Key: e.k("d")}),
	}})
	// Nested Txn with no writes inside a Txn with writes.
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("d")})}}),
		putOp(&pb.PutRequest{Key: e.k("e"), Value: []byte("1")}),
		txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("e")})}}),
	}})
	// Put of a key deleted by a DeleteRange in a sibling nested Txn that
	// comes first is allowed (see scTxnOverlaps); the order of execution
	// decides the result.
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("f"), Value: []byte("1")})}}),
		txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{delOp(&pb.DeleteRangeRequest{Key: e.k("f"), PrevKv: true})}}),
		rangeOp(&pb.RangeRequest{Key: e.k("f")}),
	}})
	e.get(e.k(""), prefixEnd(e.k("")))
}

func scTxnErrors(e *env) {
	e.put("a", "1")
	cur := e.rev()
	yes := cmpVersion(e.k("a"), pb.Compare_GREATER, 0)
	no := cmpVersion(e.k("a"), pb.Compare_EQUAL, 0)

	// Empty RequestOp: "key not found", even in the branch not taken.
	for _, ops := range [][]*pb.RequestOp{
		{{}},
		{putOp(&pb.PutRequest{Key: e.k("x"), Value: []byte("v")}), {}},
		{txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{{}}})},
	} {
		_, err := e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Success: ops})
		e.wantErr(err, rpctypes.ErrGRPCKeyNotFound)
		_, err = e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Failure: ops})
		e.wantErr(err, rpctypes.ErrGRPCKeyNotFound)
	}
	// Static checks of nested requests.
	for _, c := range []struct {
		op   *pb.RequestOp
		want error
	}{
		{rangeOp(&pb.RangeRequest{}), rpctypes.ErrGRPCEmptyKey},
		{rangeOp(&pb.RangeRequest{Key: e.k("a"), SortOrder: 99}), rpctypes.ErrGRPCInvalidSortOption},
		{rangeOp(&pb.RangeRequest{Key: e.k("a"), SortTarget: 99}), rpctypes.ErrGRPCInvalidSortOption},
		{putOp(&pb.PutRequest{Value: []byte("v")}), rpctypes.ErrGRPCEmptyKey},
		{putOp(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), IgnoreValue: true}), rpctypes.ErrGRPCValueProvided},
		{putOp(&pb.PutRequest{Key: e.k("a"), Lease: 5, IgnoreLease: true}), rpctypes.ErrGRPCLeaseProvided},
		{delOp(&pb.DeleteRangeRequest{}), rpctypes.ErrGRPCEmptyKey},
		{txnOp(&pb.TxnRequest{Compare: []*pb.Compare{{Target: pb.Compare_VERSION}}}), rpctypes.ErrGRPCEmptyKey},
		{txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{})}}), rpctypes.ErrGRPCEmptyKey},
	} {
		for _, taken := range []*pb.Compare{yes, no} {
			_, err := e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{taken}, Success: []*pb.RequestOp{c.op}})
			e.wantErr(err, c.want)
		}
	}

	// Checks against the store, made only for the branch taken.
	for _, c := range []struct {
		op   *pb.RequestOp
		want error
	}{
		{rangeOp(&pb.RangeRequest{Key: e.k("a"), Revision: cur + 1}), rpctypes.ErrGRPCFutureRev},
		{rangeOp(&pb.RangeRequest{Key: e.k("a"), Revision: cur + 100, Serializable: true}), rpctypes.ErrGRPCFutureRev},
		{putOp(&pb.PutRequest{Key: e.k("missing"), IgnoreValue: true}), rpctypes.ErrGRPCKeyNotFound},
		{putOp(&pb.PutRequest{Key: e.k("missing"), Value: []byte("v"), IgnoreLease: true}), rpctypes.ErrGRPCKeyNotFound},
		{putOp(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), Lease: 0x2fff}), rpctypes.ErrGRPCLeaseNotFound},
		{putOp(&pb.PutRequest{Key: e.k("missing"), IgnoreValue: true, Lease: 0x2fff}), rpctypes.ErrGRPCKeyNotFound},
		{txnOp(&pb.TxnRequest{Compare: []*pb.Compare{no}, Failure: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("b"), Lease: 0x2fff})}}), rpctypes.ErrGRPCLeaseNotFound},
	} {
		// Alone, with a write before it, and in the branch not taken.
		_, err := e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Success: []*pb.RequestOp{c.op}})
		e.wantErr(err, c.want)
		_, err = e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("w"), Value: []byte("v")}), c.op}})
		e.wantErr(err, c.want)
		_, err = e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: []*pb.RequestOp{c.op}, Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("a")})}})
		e.wantOK(err)
		e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: []*pb.RequestOp{c.op}, Failure: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("w"), Value: []byte("v2")})}})
		e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{yes}, Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{Compare: []*pb.Compare{no}, Success: []*pb.RequestOp{c.op}})}})
	}
	e.get(e.k(""), prefixEnd(e.k("")))
	// Nothing failed above may have written: w exists only from the
	// successful Txns.
	e.get(e.k("w"), nil)

	// Compacted revisions inside a Txn, and negative ones (which etcd's
	// Txn, unlike a plain Range, compares with the compacted revision).
	e.put("b", "1")
	e.put("b", "2")
	_, err := e.Compact(&pb.CompactionRequest{Revision: e.rev() - 1})
	e.wantOK(err)
	for _, rev := range []int64{e.rev() - 2, e.rev() - 1, e.rev(), 0, -1} {
		e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k("b"), Revision: rev})}})
		e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("c"), Value: []byte("v")}), rangeOp(&pb.RangeRequest{Key: e.k("b"), Revision: rev})}})
	}
}

func ranges(n int, key []byte) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, n)
	for i := range ops {
		ops[i] = rangeOp(&pb.RangeRequest{Key: key})
	}
	return ops
}

func puts(e *env, n int, sub string) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, n)
	for i := range ops {
		ops[i] = putOp(&pb.PutRequest{Key: e.k(fmt.Sprintf("%s%03d", sub, i)), Value: []byte("v")})
	}
	return ops
}

func compares(n int, key []byte) []*pb.Compare {
	cs := make([]*pb.Compare, n)
	for i := range cs {
		cs[i] = cmpVersion(key, pb.Compare_GREATER, 0)
	}
	return cs
}

// scTxnMaxOps checks --max-txn-ops (128): the larger of compares, success
// and failure counts, with nested Txns limited to what their parent leaves.
func scTxnMaxOps(e *env) {
	e.put("a", "1")
	a := e.k("a")
	_, err := e.Txn(&pb.TxnRequest{Success: puts(e, 128, "s/")})
	e.wantOK(err)
	_, err = e.Txn(&pb.TxnRequest{Success: puts(e, 129, "s/")})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	_, err = e.Txn(&pb.TxnRequest{Compare: compares(1, a), Failure: ranges(129, a)})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	e.Txn(&pb.TxnRequest{Compare: compares(128, a), Success: ranges(1, a)})
	_, err = e.Txn(&pb.TxnRequest{Compare: compares(129, a), Success: ranges(1, a)})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	e.Txn(&pb.TxnRequest{Compare: compares(128, a), Success: ranges(128, a), Failure: ranges(128, a)})
	// Too many ops wins over an invalid op.
	_, err = e.Txn(&pb.TxnRequest{Success: append(ranges(128, a), &pb.RequestOp{})})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	// Too many ops wins over duplicate keys.
	dup := putOp(&pb.PutRequest{Key: a, Value: []byte("v")})
	_, err = e.Txn(&pb.TxnRequest{Success: append(ranges(128, a), dup, dup)})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)

	// Nested: the parent's count (100) leaves 28 for each nested Txn.
	nested := func(n int, sub string) *pb.RequestOp {
		return txnOp(&pb.TxnRequest{Success: puts(e, n, sub)})
	}
	_, err = e.Txn(&pb.TxnRequest{Success: append(ranges(99, a), nested(28, "n1/"))})
	e.wantOK(err)
	_, err = e.Txn(&pb.TxnRequest{Success: append(ranges(99, a), nested(29, "n2/"))})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	_, err = e.Txn(&pb.TxnRequest{Compare: compares(100, a), Success: []*pb.RequestOp{nested(28, "n3/")}})
	e.wantOK(err)
	_, err = e.Txn(&pb.TxnRequest{Compare: compares(100, a), Failure: []*pb.RequestOp{nested(29, "n4/")}})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	// Siblings do not add up: two nested Txns of 126 ops each.
	_, err = e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{nested(126, "n5/"), nested(126, "n6/")}})
	e.wantOK(err)
	_, err = e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{nested(126, "n7/"), nested(127, "n8/")}})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	// Two levels: 2 at the top leaves 126, 100 in the middle leaves 26.
	lvl := func(n int, sub string) *pb.RequestOp {
		return txnOp(&pb.TxnRequest{Success: append(ranges(99, a), nested(n, sub))})
	}
	_, err = e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{lvl(26, "l1/"), rangeOp(&pb.RangeRequest{Key: a})}})
	e.wantOK(err)
	_, err = e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{lvl(27, "l2/"), rangeOp(&pb.RangeRequest{Key: a})}})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	// Nested compares count too.
	_, err = e.Txn(&pb.TxnRequest{Success: append(ranges(99, a), txnOp(&pb.TxnRequest{Compare: compares(29, a)}))})
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	_, err = e.Txn(&pb.TxnRequest{Success: append(ranges(99, a), txnOp(&pb.TxnRequest{Compare: compares(28, a)}))})
	e.wantOK(err)
	// A chain of nested Txns: level n may hold 128-(n-1) ops, so 128 levels
	// of one op are allowed and 129 are not.
	chain := func(depth int, sub string) *pb.TxnRequest {
		r := &pb.TxnRequest{Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k(sub), Value: []byte("deep")})}}
		for range depth - 1 {
			r = &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion(a, pb.Compare_GREATER, 0)}, Success: []*pb.RequestOp{txnOp(r)}}
		}
		return r
	}
	_, err = e.Txn(chain(128, "deep128"))
	e.wantOK(err)
	_, err = e.Txn(chain(129, "deep129"))
	e.wantErr(err, rpctypes.ErrGRPCTooManyOps)
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), CountOnly: true})
}

// scTxnOverlaps checks etcd's rules against writing one key twice in a Txn.
func scTxnOverlaps(e *env) {
	e.put("a", "1")
	e.put("b", "1")
	p := func(k string) *pb.RequestOp { return putOp(&pb.PutRequest{Key: e.k(k), Value: []byte("v")}) }
	d := func(k, end string) *pb.RequestOp {
		r := &pb.DeleteRangeRequest{Key: e.k(k)}
		switch end {
		case "":
		case "\x00":
			r.RangeEnd = fromKey
		default:
			r.RangeEnd = e.k(end)
		}
		return delOp(r)
	}
	r := func(k string) *pb.RequestOp { return rangeOp(&pb.RangeRequest{Key: e.k(k)}) }
	tx := func(then, els []*pb.RequestOp) *pb.RequestOp {
		return txnOp(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion(e.k("a"), pb.Compare_GREATER, 0)}, Success: then, Failure: els})
	}
	ops := func(o ...*pb.RequestOp) []*pb.RequestOp { return o }
	dupErr := rpctypes.ErrGRPCDuplicateKey
	cases := []struct {
		ops []*pb.RequestOp
		err error
	}{
		{ops(p("x"), p("x")), dupErr},
		{ops(p("x"), r("x"), p("y"), r("x")), nil},
		{ops(d("x", ""), d("x", "")), nil}, // two deletes are fine
		{ops(d("x", ""), p("x")), dupErr},
		{ops(p("x"), d("x", "")), dupErr},
		{ops(p("x"), d("w", "y")), dupErr},
		{ops(p("x"), d("w", "x")), nil},     // end is exclusive
		{ops(p("x"), d("x\x00", "z")), nil}, // begins after x
		{ops(p("x"), d("a", "\x00")), nil},  // etcd: a "from key" delete covers no put
		{ops(p("x"), d("y", "w")), nil},     // empty interval
		{ops(tx(ops(p("x")), ops(p("x")))), nil},
		{ops(tx(ops(p("x")), ops(p("y"))), p("x")), dupErr},
		{ops(tx(ops(p("x")), nil), tx(ops(p("x")), nil)), dupErr},
		{ops(tx(ops(p("x")), nil), tx(nil, ops(p("x")))), dupErr},
		{ops(tx(nil, ops(p("x"))), tx(ops(p("x")), ops(p("x")))), dupErr},
		{ops(tx(ops(p("x"), p("x")), nil)), dupErr},
		{ops(tx(ops(p("x"), d("x", "")), nil)), dupErr},
		{ops(d("x", ""), tx(ops(p("x")), nil)), dupErr},
		{ops(d("w", "y"), tx(nil, ops(p("x")))), dupErr},
		{ops(tx(ops(d("x", "")), nil), p("x")), dupErr},
		{ops(tx(nil, ops(d("w", "z"))), p("x")), dupErr},
		{ops(tx(ops(p("x")), nil), tx(ops(d("x", "")), nil)), nil}, // etcd checks nested puts only against earlier deletes
		{ops(tx(ops(d("x", "")), nil), tx(ops(p("x")), nil)), dupErr},
		{ops(tx(ops(tx(ops(p("x")), ops(p("x")))), nil), p("x")), dupErr},
		{ops(tx(ops(tx(ops(p("x")), ops(p("y")))), ops(p("x")))), nil},
		{ops(tx(ops(tx(ops(d("x", "")), nil)), nil), p("x")), dupErr},
		{ops(tx(ops(p("x")), ops(p("x"))), tx(ops(p("y")), ops(p("y")))), nil},
	}
	for _, c := range cases {
		for _, taken := range []*pb.Compare{cmpVersion(e.k("a"), pb.Compare_GREATER, 0), cmpVersion(e.k("a"), pb.Compare_EQUAL, 0)} {
			_, err := e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{taken}, Success: c.ops})
			if c.err == nil {
				e.wantOK(err)
			} else {
				e.wantErr(err, c.err)
			}
			_, err = e.Txn(&pb.TxnRequest{Compare: []*pb.Compare{taken}, Failure: c.ops})
			if c.err == nil {
				e.wantOK(err)
			} else {
				e.wantErr(err, c.err)
			}
		}
		// The same ops split across the two branches never conflict.
		if len(c.ops) == 2 {
			e.Txn(&pb.TxnRequest{Success: c.ops[:1], Failure: c.ops[1:]})
		}
	}
	e.get(e.k(""), prefixEnd(e.k("")))
}

// ---------------------------------------------------------------- Compact

func scCompact(e *env) {
	e.put("a", "1")
	e.put("a", "2")
	e.put("gone", "1")
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("gone")})
	e.put("b", "1")
	cur := e.rev()
	_, err := e.Compact(&pb.CompactionRequest{Revision: cur - 1})
	e.wantOK(err)
	_, err = e.Compact(&pb.CompactionRequest{Revision: cur - 1})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
	_, err = e.Compact(&pb.CompactionRequest{Revision: cur - 2})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
	_, err = e.Compact(&pb.CompactionRequest{Revision: 0})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
	_, err = e.Compact(&pb.CompactionRequest{Revision: -1})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
	_, err = e.Compact(&pb.CompactionRequest{Revision: cur + 1})
	e.wantErr(err, rpctypes.ErrGRPCFutureRev)
	_, err = e.Compact(&pb.CompactionRequest{Revision: cur + 1, Physical: true})
	e.wantErr(err, rpctypes.ErrGRPCFutureRev)
	for _, rev := range []int64{cur - 2, cur - 1, cur} {
		e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: rev})
	}
	// Physical compaction to the current revision.
	_, err = e.Compact(&pb.CompactionRequest{Revision: cur, Physical: true})
	e.wantOK(err)
	_, err = e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: cur - 1})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: cur})
	e.Range(&pb.RangeRequest{Key: e.k("a"), Revision: cur, Limit: 1})
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: cur, CountOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: cur, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD})
	// History survives the compaction: versions go on, create revisions
	// stay; a key deleted before it starts over.
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("3"), PrevKv: true})
	e.Put(&pb.PutRequest{Key: e.k("gone"), Value: []byte("again"), PrevKv: true})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("b"), PrevKv: true})
	e.get(e.k(""), prefixEnd(e.k("")))
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: cur})
	// Compacting to a revision whose only change is a delete, then reading
	// it.
	del := e.rev()
	e.put("c", "1")
	_, err = e.Compact(&pb.CompactionRequest{Revision: del})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: del})
	e.Range(&pb.RangeRequest{Key: e.k("b"), Revision: del})
	// Compacting to the current revision.
	_, err = e.Compact(&pb.CompactionRequest{Revision: e.rev()})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: e.rev()})
	_, err = e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: e.rev() - 1})
	e.wantErr(err, rpctypes.ErrGRPCCompacted)
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k(""))})
}

// ---------------------------------------------------------------- sizes

func scRequestSize(e *env) {
	const maxReq = 1536 * 1024
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }

	_, err := e.Put(&pb.PutRequest{Key: e.k("big"), Value: big(maxReq + 1)})
	e.wantErr(err, rpctypes.ErrGRPCRequestTooLarge)
	_, err = e.Put(&pb.PutRequest{Key: e.k("big"), Value: big(maxReq - 4096)})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: e.k("big"), KeysOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k("big")})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("big")})

	// Around gRPC's receive limit (max request bytes + 512 KiB).
	const grpcMax = maxReq + 512*1024
	n := grpcMax - 100
	for (&pb.PutRequest{Key: e.k("grpc"), Value: big(n)}).Size() < grpcMax {
		n++
	}
	for _, v := range []int{n, n + 1} {
		_, err = e.Put(&pb.PutRequest{Key: e.k("grpc"), Value: big(v)})
	}
	if status.Code(err) != codes.ResourceExhausted {
		e.t.Fatalf("test bug: etcd answered a put of %d bytes with %v", (&pb.PutRequest{Key: e.k("grpc"), Value: big(n + 1)}).Size(), err)
	}

	// Beyond gRPC's receive limit.
	_, err = e.Put(&pb.PutRequest{Key: e.k("huge"), Value: big(2200 * 1024)})
	if status.Code(err) != codes.ResourceExhausted {
		e.t.Fatalf("test bug: etcd answered a 2.1 MiB put with %v", err)
	}
	e.Range(&pb.RangeRequest{Key: big(2200 * 1024)})

	// Requests that do not go through the log are not limited by
	// --max-request-bytes: a big Range, a big read-only Txn.
	e.Range(&pb.RangeRequest{Key: big(maxReq + 10)})
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: big(maxReq + 10)})}})
	// A Txn with a write is, whichever branch is taken.
	_, err = e.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpVersion(e.k("nothing"), pb.Compare_GREATER, 0)},
		Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("x"), Value: []byte("v")})},
		Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: big(maxReq + 10)})},
	})
	e.wantErr(err, rpctypes.ErrGRPCRequestTooLarge)
	_, err = e.Delete(&pb.DeleteRangeRequest{Key: big(maxReq + 10)})
	e.wantErr(err, rpctypes.ErrGRPCRequestTooLarge)
	// Many values that add up.
	var ops []*pb.RequestOp
	for i := range 4 {
		ops = append(ops, putOp(&pb.PutRequest{Key: e.k(fmt.Sprint("m", i)), Value: big(400 * 1024)}))
	}
	_, err = e.Txn(&pb.TxnRequest{Success: ops})
	e.wantErr(err, rpctypes.ErrGRPCRequestTooLarge)
	_, err = e.Txn(&pb.TxnRequest{Success: ops[:3]})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: e.k("m"), RangeEnd: prefixEnd(e.k("m")), KeysOnly: true})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("m"), RangeEnd: prefixEnd(e.k("m"))})
	e.get(e.k(""), prefixEnd(e.k("")))
}

// scRequestSizeEdge puts values whose log entry is within a few bytes of
// --max-request-bytes: the entry (an InternalRaftRequest whose header holds
// a request ID) must not exceed it. Its size depends on the varint size of
// the ID, which is the same for both servers only if they build IDs alike
// (etcd: the member ID's low 16 bits in the top 16 bits).
func scRequestSizeEdge(e *env) {
	const maxReq = 1536 * 1024
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	// fill returns the value size that makes entry(size) reach maxReq with
	// a 10-byte ID.
	fill := func(wrap func(*pb.PutRequest) *pb.InternalRaftRequest) int {
		n := maxReq - 200
		for {
			r := wrap(&pb.PutRequest{Key: e.k("edge"), Value: big(n)})
			r.Header = &pb.RequestHeader{ID: 1 << 63}
			if r.Size() >= maxReq {
				return n
			}
			n++
		}
	}
	n := fill(func(p *pb.PutRequest) *pb.InternalRaftRequest { return &pb.InternalRaftRequest{Put: p} })
	for _, v := range []int{n - 10, n - 9, n - 1, n, n + 1} {
		e.Put(&pb.PutRequest{Key: e.k("edge"), Value: big(v)})
	}
	e.Range(&pb.RangeRequest{Key: e.k("edge"), KeysOnly: true})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("edge")})

	n = fill(func(p *pb.PutRequest) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp(p)}}}
	})
	for _, v := range []int{n - 1, n, n + 1} {
		e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k("edge"), Value: big(v)})}})
	}
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("edge")})
}

// ---------------------------------------------------------------- Kubernetes

// k8sCreate is kube-apiserver's create: if mod_revision(key) == 0 then put.
func (e *env) k8sCreate(key, value string, lease int64) (*pb.TxnResponse, error) {
	e.t.Helper()
	return e.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpMod(e.k(key), pb.Compare_EQUAL, 0)},
		Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k(key), Value: []byte(value), Lease: lease})},
	})
}

// k8sUpdate is the guarded update: if mod_revision(key) == rv then put
// else range.
func (e *env) k8sUpdate(key, value string, rv int64) (*pb.TxnResponse, error) {
	e.t.Helper()
	return e.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpMod(e.k(key), pb.Compare_EQUAL, rv)},
		Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: e.k(key), Value: []byte(value)})},
		Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k(key)})},
	})
}

// k8sDelete is the guarded delete: if mod_revision(key) == rv then delete
// else range.
func (e *env) k8sDelete(key string, rv int64) (*pb.TxnResponse, error) {
	e.t.Helper()
	return e.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpMod(e.k(key), pb.Compare_EQUAL, rv)},
		Success: []*pb.RequestOp{delOp(&pb.DeleteRangeRequest{Key: e.k(key)})},
		Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: e.k(key)})},
	})
}

func scK8sCRUD(e *env) {
	const lease = 0x3001
	_, err := e.Grant(&pb.LeaseGrantRequest{ID: lease, TTL: 3600})
	e.wantOK(err)
	c1, err := e.k8sCreate("pods/ns/a", "pod-a-1", 0)
	e.wantOK(err)
	e.k8sCreate("pods/ns/a", "pod-a-dup", 0) // conflict: no else branch
	e.k8sCreate("events/ns/e1", "event", lease)
	e.k8sCreate("events/ns/e2", "event", lease)
	rv := c1.Header.Revision

	e.Range(&pb.RangeRequest{Key: e.k("pods/ns/a"), Limit: 1})
	e.Range(&pb.RangeRequest{Key: e.k("pods/ns/a"), Revision: rv, Limit: 1})
	e.Range(&pb.RangeRequest{Key: e.k("pods/"), RangeEnd: prefixEnd(e.k("pods/")), Limit: 1}) // current RV of a resource

	u1, err := e.k8sUpdate("pods/ns/a", "pod-a-2", rv)
	e.wantOK(err)
	e.k8sUpdate("pods/ns/a", "pod-a-stale", rv) // conflict: returns the current object
	e.k8sUpdate("pods/ns/missing", "x", rv)     // conflict on a missing key
	rv2 := u1.Header.Revision
	e.k8sDelete("pods/ns/a", rv) // stale
	e.k8sDelete("pods/ns/a", rv2)
	e.k8sDelete("pods/ns/a", rv2) // already deleted: the failure range is empty
	e.k8sCreate("pods/ns/a", "pod-a-reborn", 0)

	// Count and keys-only lists.
	e.Range(&pb.RangeRequest{Key: e.k("events/"), RangeEnd: prefixEnd(e.k("events/")), CountOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), KeysOnly: true})
	// Health check on a key that does not exist.
	e.Range(&pb.RangeRequest{Key: e.k("health")})
	e.Revoke(&pb.LeaseRevokeRequest{ID: lease})
	e.get(e.k(""), prefixEnd(e.k("")))
}

func scK8sCompaction(e *env) {
	key := []byte("compact_rev_key")
	compactTxn := func(t int64, rev int64) (*pb.TxnResponse, error) {
		e.t.Helper()
		return e.Txn(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpVersion(key, pb.Compare_EQUAL, t)},
			Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: key, Value: []byte(fmt.Sprint(rev))})},
			Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: key})},
		})
	}
	e.put("x", "1")
	e.put("x", "2")
	var version int64
	for round := range 3 {
		rev := e.rev()
		resp, err := compactTxn(version, rev)
		e.wantOK(err)
		if !resp.Succeeded {
			e.t.Fatalf("test bug: compaction txn round %d failed in etcd", round)
		}
		version++
		_, err = e.Compact(&pb.CompactionRequest{Revision: rev})
		e.wantOK(err)
		// Another apiserver with a stale version loses and reads the key.
		compactTxn(version-1, rev)
		e.put("x", fmt.Sprint(round))
	}
	e.Range(&pb.RangeRequest{Key: key})
}

func scK8sPagination(e *env) {
	for i := range 10 {
		e.put(fmt.Sprintf("pods/p%02d", i), fmt.Sprintf("pod-%d", i))
	}
	e.put("pods0", "outside the prefix")
	pre := e.k("pods/")
	end := prefixEnd(pre)
	first, err := e.Range(&pb.RangeRequest{Key: pre, RangeEnd: end, Limit: 3})
	e.wantOK(err)
	pinned := first.Header.Revision
	resp := first
	for page := 1; resp.More && page < 10; page++ {
		// Writes to the prefix between pages: before and after the
		// cursor, new keys, updates and deletes.
		e.put(fmt.Sprintf("pods/p%02da", page), "new")
		e.put(fmt.Sprintf("pods/p%02d", 9-page), "updated")
		e.Delete(&pb.DeleteRangeRequest{Key: e.k(fmt.Sprintf("pods/p%02d", page*3+1))})
		next := append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		resp, err = e.Range(&pb.RangeRequest{Key: next, RangeEnd: end, Limit: 3, Revision: pinned})
		e.wantOK(err)
		// The same page read at the current revision, and a count.
		e.Range(&pb.RangeRequest{Key: next, RangeEnd: end, Limit: 3})
		e.Range(&pb.RangeRequest{Key: next, RangeEnd: end, Revision: pinned, CountOnly: true})
	}
	// Doubling page sizes, as filtered lists do.
	for _, limit := range []int64{1, 2, 4, 8, 16} {
		e.Range(&pb.RangeRequest{Key: pre, RangeEnd: end, Limit: limit, Revision: pinned})
	}
	e.Range(&pb.RangeRequest{Key: pre, RangeEnd: end, Limit: 10000, Revision: pinned})
	e.Range(&pb.RangeRequest{Key: pre, RangeEnd: end, Limit: 10000})
}

// ---------------------------------------------------------------- bulk

const bulkKeys = 4096

// bulkWrite writes bulkKeys keys with 1 KiB names under sub, 128 per Txn.
func (e *env) bulkWrite(sub string, lease int64) {
	e.t.Helper()
	pad := strings.Repeat("k", 1000)
	for i := 0; i < bulkKeys; i += 128 {
		var ops []*pb.RequestOp
		for j := i; j < i+128; j++ {
			ops = append(ops, putOp(&pb.PutRequest{Key: e.k(fmt.Sprintf("%s%05d-%s", sub, j, pad)), Value: []byte("v"), Lease: lease}))
		}
		_, err := e.Txn(&pb.TxnRequest{Success: ops})
		e.wantOK(err)
	}
	e.Range(&pb.RangeRequest{Key: e.k(sub), RangeEnd: prefixEnd(e.k(sub)), CountOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k(sub), RangeEnd: prefixEnd(e.k(sub)), Limit: 3, KeysOnly: true})
}

// scBulkDelete deletes 4096 keys with 1 KiB names (4 MiB of keys) with one
// DeleteRange: one revision touching every key.
func scBulkDelete(e *env) {
	e.bulkWrite("del/", 0)
	_, err := e.Delete(&pb.DeleteRangeRequest{Key: e.k("del/"), RangeEnd: prefixEnd(e.k("del/"))})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: e.k("del/"), RangeEnd: prefixEnd(e.k("del/")), CountOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k("del/"), RangeEnd: prefixEnd(e.k("del/")), CountOnly: true, Revision: e.rev() - 1})
}

// scBulkDeleteSmall deletes 60,000 keys with short names with one
// DeleteRange (as `etcdctl del --prefix` on a big prefix does).
func scBulkDeleteSmall(e *env) {
	const n = 60000
	for i := 0; i < n; i += 128 {
		var ops []*pb.RequestOp
		for j := i; j < i+128 && j < n; j++ {
			ops = append(ops, putOp(&pb.PutRequest{Key: e.k(fmt.Sprintf("registry/events/ns/%06d", j)), Value: []byte("v")}))
		}
		_, err := e.Txn(&pb.TxnRequest{Success: ops})
		e.wantOK(err)
	}
	key, end := e.k("registry/"), prefixEnd(e.k("registry/"))
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true})
	_, err := e.Delete(&pb.DeleteRangeRequest{Key: key, RangeEnd: end})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true})
}

// scBulkRevoke is scBulkDelete with a LeaseRevoke.
func scBulkRevoke(e *env) {
	const lease = 0x5001
	_, err := e.Grant(&pb.LeaseGrantRequest{ID: lease, TTL: 3600})
	e.wantOK(err)
	e.bulkWrite("lease/", lease)
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: lease})
	e.wantOK(err)
	e.Range(&pb.RangeRequest{Key: e.k("lease/"), RangeEnd: prefixEnd(e.k("lease/")), CountOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k("lease/"), RangeEnd: prefixEnd(e.k("lease/")), CountOnly: true, Revision: e.rev() - 1})
}

// scLongKey uses a key of n bytes (plus the prefix): etcd limits keys only
// through the request size.
func scLongKey(e *env, n int) {
	key := e.k(strings.Repeat("x", n))
	_, err := e.Put(&pb.PutRequest{Key: key, Value: []byte("v")})
	e.wantOK(err)
	e.Put(&pb.PutRequest{Key: key, Value: []byte("w"), PrevKv: true})
	e.Range(&pb.RangeRequest{Key: key, KeysOnly: true})
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), CountOnly: true})
	e.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpVersion(key, pb.Compare_EQUAL, 2)},
		Success: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: key, CountOnly: true})},
	})
	e.Range(&pb.RangeRequest{Key: key, Revision: e.rev() - 1, KeysOnly: true})
	e.Delete(&pb.DeleteRangeRequest{Key: key})
	e.Range(&pb.RangeRequest{Key: key, CountOnly: true})
	e.Range(&pb.RangeRequest{Key: key, Revision: e.rev() - 1, KeysOnly: true})
}

// scLongKeyRefused checks sett's one documented difference: a key longer
// than storage.MaxKeyBytes (Badger's key limit less sett's framing; etcd
// has none) is refused with "request is too large", alone or in a Txn, and
// the refusal leaves the write path working and the revision unchanged.
func scLongKeyRefused(e *env) {
	e.t.Helper()
	ctx := context.Background()
	kv := e.p.sett.kv
	before, err := kv.Range(ctx, &pb.RangeRequest{Key: e.k("x")})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, n := range []int{storage.MaxKeyBytes + 1, 65000, 1 << 20} {
		key := []byte(strings.Repeat("k", n))
		_, err := kv.Put(ctx, &pb.PutRequest{Key: key, Value: []byte("v")})
		if st := status.Convert(err); st.Message() != "etcdserver: request is too large" {
			e.t.Fatalf("put of a %d-byte key: %v", n, err)
		}
		_, err = kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{putOp(&pb.PutRequest{Key: key})}})
		if st := status.Convert(err); st.Message() != "etcdserver: request is too large" {
			e.t.Fatalf("txn put of a %d-byte key: %v", n, err)
		}
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: key})
		if err != nil || r.Count != 0 {
			e.t.Fatalf("range of a %d-byte key: %v %v", n, r, err)
		}
	}
	after, err := kv.Put(ctx, &pb.PutRequest{Key: e.k("x"), Value: []byte("still writable")})
	if err != nil {
		e.t.Fatalf("write after refused long keys: %v", err)
	}
	if after.Header.Revision != before.Header.Revision+1 {
		e.t.Fatalf("refused writes moved the revision: %d -> %d", before.Header.Revision, after.Header.Revision)
	}
	// Keep etcd at the same revision for the scenarios that follow.
	if _, err := e.p.etcd.kv.Put(ctx, &pb.PutRequest{Key: e.k("x"), Value: []byte("still writable")}); err != nil {
		e.t.Fatal(err)
	}
}

// ---------------------------------------------------------------- restart

// restartBoth restarts both servers on their data dirs (crash: SIGKILL
// instead of SIGTERM) and waits until they serve again.
func (e *env) restartBoth(crash bool) {
	e.t.Helper()
	for _, s := range []*server{e.p.etcd, e.p.sett} {
		if crash {
			s.proc.Kill()
		}
		s.proc.Restart(e.t)
	}
	for _, s := range []*server{e.p.etcd, e.p.sett} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("compat-ready")})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("%s not serving after restart: %v", s.kind, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// scRestart checks that everything answered before a restart (or a
// crash) is answered the same way after it.
func scRestart(e *env) {
	const l1, l2 = 0x6001, 0x6002
	e.Grant(&pb.LeaseGrantRequest{ID: l1, TTL: 3600})
	e.Grant(&pb.LeaseGrantRequest{ID: l2, TTL: 3600})
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("1"), Lease: l1})
	e.put("b", "1")
	e.put("b", "2")
	e.put("c", "1")
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("c")})
	e.Put(&pb.PutRequest{Key: e.k("d"), Value: []byte("1"), Lease: l2})
	e.put("b", "3")
	compactAt := e.rev() - 2
	_, err := e.Compact(&pb.CompactionRequest{Revision: compactAt})
	e.wantOK(err)
	e.put("e", "1")
	check := func() {
		e.t.Helper()
		cur := e.rev()
		for _, rev := range []int64{0, cur, cur - 1, compactAt, compactAt - 1, cur + 1} {
			e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: rev})
		}
		e.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey, CountOnly: true})
		_, err := e.Compact(&pb.CompactionRequest{Revision: compactAt})
		e.wantErr(err, rpctypes.ErrGRPCCompacted)
		_, err = e.Grant(&pb.LeaseGrantRequest{ID: l2, TTL: 3600})
		e.wantErr(err, rpctypes.ErrGRPCLeaseExist)
	}
	check()

	e.restartBoth(false)
	check()
	e.put("b", "4") // the revision goes on from where it was
	e.Revoke(&pb.LeaseRevokeRequest{ID: l1})
	e.get(e.k(""), prefixEnd(e.k("")))

	e.restartBoth(true)
	check()
	e.Put(&pb.PutRequest{Key: e.k("b"), Value: []byte("5"), PrevKv: true})
	e.Revoke(&pb.LeaseRevokeRequest{ID: l2})
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: l1})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	e.get(e.k(""), prefixEnd(e.k("")))
	_, err = e.Compact(&pb.CompactionRequest{Revision: e.rev(), Physical: true})
	e.wantOK(err)
	e.restartBoth(true)
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: e.rev() - 1})
	e.get(e.k(""), prefixEnd(e.k("")))
}
