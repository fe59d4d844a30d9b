package etcdapi

import (
	"context"
	"errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"io"
	"log/slog"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
)

type maintNode struct {
	store *storage.Store
	api   *Server
	m     *Maintenance
	c     *Cluster
	quota grpc.UnaryServerInterceptor
	space *storage.SpaceMeter
}

func newMaintNode(t *testing.T, quota int64) *maintNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := storage.DefaultOptions(t.TempDir())
	opts.MemTableBytes = 4 << 20
	opts.Logger = log
	st, err := storage.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	local, err := replication.StartSingle(st, opts.Dir, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Stop(); st.Close() })
	api := New(Config{ClusterID: 0x1234, MemberID: 0x5678}, st, local)
	n := &maintNode{store: st, api: api, space: storage.NewSpaceMeter(st, 0)}
	hashes := NewCompactionHashes()
	n.m = api.Maintenance(MaintenanceConfig{Store: st, Space: n.space, QuotaBackendBytes: quota, Hashes: hashes, Logger: log})
	n.c = api.Cluster()
	n.quota = api.QuotaInterceptor(QuotaConfig{Store: st, Space: n.space, QuotaBackendBytes: quota, Hashes: hashes, Logger: log})
	return n
}

// call runs a KV request through the quota interceptor.
func (n *maintNode) call(t *testing.T, method string, req any) (any, error) {
	t.Helper()
	kv := n.api.KV()
	return n.quota(context.Background(), req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
		switch r := req.(type) {
		case *pb.PutRequest:
			return kv.Put(ctx, r)
		case *pb.TxnRequest:
			return kv.Txn(ctx, r)
		case *pb.DeleteRangeRequest:
			return kv.DeleteRange(ctx, r)
		case *pb.CompactionRequest:
			return kv.Compact(ctx, r)
		case *pb.RangeRequest:
			return kv.Range(ctx, r)
		}
		t.Fatalf("unexpected %T", req)
		return nil, nil
	})
}

func TestQuotaCost(t *testing.T) {
	put := &pb.PutRequest{Key: []byte("key"), Value: []byte("value")}
	op := func(p *pb.PutRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
	}
	for _, c := range []struct {
		req  any
		want int
	}{
		{put, 256 + 3 + 5},
		{&pb.LeaseGrantRequest{TTL: 5}, 64},
		{&pb.DeleteRangeRequest{Key: []byte("k")}, 0},
		{&pb.RangeRequest{Key: []byte("k")}, 0},
		{&pb.CompactionRequest{Revision: 3}, 0},
		{&pb.TxnRequest{Success: []*pb.RequestOp{op(put), op(put)}, Failure: []*pb.RequestOp{op(put)}}, 2 * 264},
		{&pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{op(put)}}}}}}, 264},
		{&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{}}}}}, 0},
	} {
		if got := QuotaCost(c.req); got != c.want {
			t.Errorf("%v: cost %d, want %d", c.req, got, c.want)
		}
	}
	if QuotaBytes(0) != 2<<30 || QuotaBytes(-1) != 0 || QuotaBytes(100) != 100 {
		t.Error("QuotaBytes")
	}
}

// A write past the quota raises NOSPACE and is refused; with the alarm on
// every charged request is refused, free ones pass; disarming lifts it.
func TestQuotaRaisesNoSpace(t *testing.T) {
	n := newMaintNode(t, 1) // any write exceeds one byte
	_, err := n.call(t, "/etcdserverpb.KV/Put", &pb.PutRequest{Key: []byte("a"), Value: []byte("b")})
	if !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("put past the quota: %v", err)
	}
	al, err := n.m.Alarm(context.Background(), &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil || len(al.Alarms) != 1 || al.Alarms[0].MemberID != 0x5678 || al.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms %v %v", al, err)
	}
	if al.Header == nil || al.Header.ClusterId != 0x1234 || al.Header.Revision != 1 {
		t.Errorf("alarm header %v", al.Header)
	}
	if _, err := n.call(t, "/etcdserverpb.KV/DeleteRange", &pb.DeleteRangeRequest{Key: []byte("a")}); err != nil {
		t.Errorf("delete with NOSPACE: %v", err)
	}
	st, err := n.m.Status(context.Background(), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Errors) != 1 || st.Errors[0] != "memberID:22136 alarm:NOSPACE " || st.DbSizeQuota != 1 || st.Version != "3.6.16" ||
		st.Leader != singleID || st.StorageVersion != "3.6.0" || st.DbSize == 0 || st.DowngradeInfo == nil {
		t.Errorf("status %+v", st)
	}
	dis, err := n.m.Alarm(context.Background(), &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 0x5678, Alarm: pb.AlarmType_NOSPACE})
	if err != nil || len(dis.Alarms) != 1 {
		t.Fatalf("disarm %v %v", dis, err)
	}
	if n.store.NoSpace() {
		t.Fatal("NOSPACE still active")
	}
}

// HashKV at a compaction point answers with the hash computed while
// compacting (its compact revision the previous point), also once the
// revision is compacted away.
func TestCompactionHashes(t *testing.T) {
	n := newMaintNode(t, 0)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		if _, err := n.call(t, "/etcdserverpb.KV/Put", &pb.PutRequest{Key: []byte{'k', byte('0' + i%2)}, Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := n.m.HashKV(ctx, &pb.HashKVRequest{Revision: 4})
	if err != nil || before.CompactRevision != -1 {
		t.Fatalf("%v %v", before, err)
	}
	if _, err := n.call(t, "/etcdserverpb.KV/Compact", &pb.CompactionRequest{Revision: 4, Physical: true}); err != nil {
		t.Fatal(err)
	}
	at4, err := n.m.HashKV(ctx, &pb.HashKVRequest{Revision: 4})
	if err != nil || at4.CompactRevision != -1 || at4.HashRevision != 4 || at4.Hash != before.Hash || at4.Header.Revision != 7 {
		t.Fatalf("at the compaction point: %v %v (before %v)", at4, err, before)
	}
	if _, err := n.call(t, "/etcdserverpb.KV/Compact", &pb.CompactionRequest{Revision: 6, Physical: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.call(t, "/etcdserverpb.KV/Compact", &pb.CompactionRequest{Revision: 5}); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("compacting below the point: %v", err)
	}
	again, err := n.m.HashKV(ctx, &pb.HashKVRequest{Revision: 4})
	if err != nil || again.Hash != at4.Hash {
		t.Fatalf("compacted-away point: %v %v", again, err)
	}
	if _, err := n.m.HashKV(ctx, &pb.HashKVRequest{Revision: 5}); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("below the compaction point: %v", err)
	}
	at6, err := n.m.HashKV(ctx, &pb.HashKVRequest{Revision: 6})
	if err != nil || at6.CompactRevision != 4 {
		t.Fatalf("second point: %v %v", at6, err)
	}
	cur, err := n.m.HashKV(ctx, &pb.HashKVRequest{})
	if err != nil || cur.CompactRevision != 6 || cur.HashRevision != 7 {
		t.Fatalf("current: %v %v", cur, err)
	}
}

func TestClusterAndDowngrade(t *testing.T) {
	n := newMaintNode(t, 0)
	ctx := context.Background()
	l, err := n.c.MemberList(ctx, &pb.MemberListRequest{})
	if err != nil || len(l.Members) != 1 || l.Members[0].ID != singleID || l.Members[0].Name != "single" || l.Header.Revision != 0 || l.Header.MemberId != 0x5678 {
		t.Fatalf("member list %v %v", l, err)
	}
	for _, c := range []struct {
		err  error
		want error
	}{
		{second(n.c.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"bogus"}})), rpctypes.ErrGRPCMemberBadURLs},
		{second(n.c.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:2380"}})), rpctypes.ErrGRPCPeerURLExist},
		{second(n.c.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:2390"}, IsLearner: true})), nil},
		{second(n.c.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:2391"}, IsLearner: true})), rpctypes.ErrGRPCTooManyLearners},
		{second(n.c.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: singleID})), status.Error(codes.Unknown, "etcdserver: re-configuration failed due to not enough started members")},
		{second(n.c.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: 1})), rpctypes.ErrGRPCMemberNotFound},
		{second(n.c.MemberPromote(ctx, &pb.MemberPromoteRequest{ID: singleID})), rpctypes.ErrGRPCMemberNotLearner},
		{second(n.c.MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: 1})), rpctypes.ErrGRPCMemberNotFound},
		{second(n.m.MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: 1})), rpctypes.ErrGRPCBadLeaderTransferee},
		{second(n.m.MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: singleID})), nil},
		{second(n.m.Downgrade(ctx, &pb.DowngradeRequest{Version: "3.5"})), nil},
		{second(n.m.Downgrade(ctx, &pb.DowngradeRequest{Version: "3.5.1"})), nil},
		{second(n.m.Downgrade(ctx, &pb.DowngradeRequest{Version: "3.4"})), rpctypes.ErrGRPCInvalidDowngradeTargetVersion},
		{second(n.m.Downgrade(ctx, &pb.DowngradeRequest{Version: "three"})), rpctypes.ErrGRPCWrongDowngradeVersionFormat},
		{second(n.m.Downgrade(ctx, &pb.DowngradeRequest{Action: pb.DowngradeRequest_CANCEL})), nil},
	} {
		if !errors.Is(c.err, c.want) && (c.err == nil || c.want == nil || c.err.Error() != c.want.Error()) {
			t.Errorf("got %v, want %v", c.err, c.want)
		}
	}
	up, err := n.c.MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: singleID, PeerURLs: []string{"http://10.0.0.1:2380"}})
	if err != nil || up.Members[0].PeerURLs[0] != "http://10.0.0.1:2380" {
		t.Fatalf("update %v %v", up, err)
	}
}

func second[T any](_ T, err error) error { return err }

// singleID is the member ID of replication.StartSingle's member.
const singleID = 0x5e77
