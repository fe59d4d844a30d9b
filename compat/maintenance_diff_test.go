package compat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/sett-dev/sett/internal/testproc"
)

func maint(s *server) pb.MaintenanceClient { return pb.NewMaintenanceClient(s.cli.ActiveConnection()) }
func clus(s *server) pb.ClusterClient      { return pb.NewClusterClient(s.cli.ActiveConnection()) }

// status calls Status and blanks what differs between any two members
// (sizes, raft indexes) after checking it is plausible.
func (e *env) status() (*pb.StatusResponse, error) {
	e.t.Helper()
	req := &pb.StatusRequest{}
	return call(e, "Status", req, func(ctx context.Context, s *server) (*pb.StatusResponse, error) {
		r, err := maint(s).Status(ctx, req)
		if err != nil {
			return r, err
		}
		if r.DbSize <= 0 || r.DbSizeInUse <= 0 || r.DbSizeInUse > r.DbSize {
			e.t.Errorf("%s: implausible sizes: db_size %d, in use %d", s.kind, r.DbSize, r.DbSizeInUse)
		}
		if r.RaftAppliedIndex != r.RaftIndex {
			e.t.Errorf("%s: raft index %d, applied %d", s.kind, r.RaftIndex, r.RaftAppliedIndex)
		}
		if r.Leader != r.Header.MemberId || r.RaftTerm != r.Header.RaftTerm {
			e.t.Errorf("%s: leader %x (member %x), term %d (header %d)", s.kind, r.Leader, r.Header.MemberId, r.RaftTerm, r.Header.RaftTerm)
		}
		r.DbSize, r.DbSizeInUse, r.RaftIndex, r.RaftAppliedIndex, r.RaftTerm = 0, 0, 0, 0, 0
		return r, nil
	})
}

func (e *env) hashKV(rev int64) (*pb.HashKVResponse, error) {
	e.t.Helper()
	req := &pb.HashKVRequest{Revision: rev}
	return call(e, "HashKV", req, func(ctx context.Context, s *server) (*pb.HashKVResponse, error) {
		return maint(s).HashKV(ctx, req)
	})
}

func (e *env) alarm(req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	e.t.Helper()
	return call(e, "Alarm", req, func(ctx context.Context, s *server) (*pb.AlarmResponse, error) {
		return maint(s).Alarm(ctx, req)
	})
}

// TestMaintenanceDiff sends the same Maintenance and Cluster calls to etcd
// and sett and compares the answers: Status, HashKV (sett computes etcd's
// hash, so the values must be equal), alarms and what they refuse,
// Defragment, Hash, MoveLeader, Downgrade and membership calls.
func TestMaintenanceDiff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	p := newPair(t)
	e := newEnv(t, p, "/maint/")
	ctx := context.Background()

	e.status()
	e.hashKV(0)
	for i := 0; i < 6; i++ {
		e.wantOK(second(e.Put(&pb.PutRequest{Key: e.k(fmt.Sprint("a", i%3)), Value: []byte(fmt.Sprint("v", i))})))
	}
	e.wantOK(second(e.Delete(&pb.DeleteRangeRequest{Key: e.k("a1")})))
	e.wantOK(second(e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: e.k("t1"), Value: []byte("x")}}},
		{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: e.k("a2")}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: e.k("t2"), Value: []byte("y")}}},
	}})))
	g, err := e.Grant(&pb.LeaseGrantRequest{ID: 0x5e77, TTL: 100})
	e.wantOK(err)
	if g != nil {
		e.Put(&pb.PutRequest{Key: e.k("leased"), Value: []byte("l"), Lease: g.ID})
		e.Put(&pb.PutRequest{Key: e.k("leased2"), Value: []byte("l"), Lease: g.ID})
		e.Revoke(&pb.LeaseRevokeRequest{ID: g.ID})
	}
	rev := e.rev()
	for r := int64(1); r <= rev; r++ {
		e.hashKV(r)
	}
	e.hashKV(rev + 1)
	e.status()

	// Compactions, then hashes at and above the compaction point.
	for _, c := range []int64{4, rev - 2} {
		_, err := e.Compact(&pb.CompactionRequest{Revision: c, Physical: true})
		e.wantOK(err)
		for r := c - 1; r <= rev; r++ {
			e.hashKV(r)
		}
	}
	e.wantOK(second(e.Put(&pb.PutRequest{Key: e.k("a0"), Value: []byte("after")})))
	e.hashKV(0)

	// Alarms: raising NOSPACE caps writes; deletes, reads and compaction
	// still work; disarming lifts it.
	member := p.ids[0][1]
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: pb.AlarmType_NONE})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: member, Alarm: pb.AlarmType_NOSPACE})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: pb.AlarmType_NOSPACE})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: pb.AlarmType_NOSPACE})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_GET, Alarm: pb.AlarmType_NOSPACE})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_GET, Alarm: pb.AlarmType_CORRUPT})
	e.status()
	t.Run("http while NOSPACE", func(t *testing.T) {
		compareHTTP(t, p, []httpCase{
			{path: "/health"}, {path: "/health?exclude=NOSPACE"}, {path: "/health?exclude=CORRUPT"},
			{path: "/readyz?verbose"}, {path: "/livez"},
		})
	})
	_, err = e.Put(&pb.PutRequest{Key: e.k("capped"), Value: []byte("x")})
	e.wantErr(err, rpctypes.ErrGRPCNoSpace)
	_, err = e.Txn(&pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: e.k("capped")}}}}})
	e.wantErr(err, rpctypes.ErrGRPCNoSpace)
	e.wantOK(second(e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: e.k("t1")}}}}})))
	e.wantOK(second(e.Delete(&pb.DeleteRangeRequest{Key: e.k("t2")})))
	e.wantOK(second(e.Range(&pb.RangeRequest{Key: e.k("a0")})))
	_, err = e.Grant(&pb.LeaseGrantRequest{TTL: 100})
	e.wantErr(err, rpctypes.ErrGRPCNoSpace)
	e.wantOK(second(e.Compact(&pb.CompactionRequest{Revision: e.rev()})))
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: member, Alarm: pb.AlarmType_NOSPACE})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	e.wantOK(second(e.Put(&pb.PutRequest{Key: e.k("capped"), Value: []byte("x")})))
	e.status()

	// CORRUPT refuses every write, not reads.
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: pb.AlarmType_CORRUPT})
	e.status()
	_, err = e.Put(&pb.PutRequest{Key: e.k("c"), Value: []byte("x")})
	e.wantErr(err, rpctypes.ErrGRPCCorrupt)
	_, err = e.Delete(&pb.DeleteRangeRequest{Key: e.k("a0")})
	e.wantErr(err, rpctypes.ErrGRPCCorrupt)
	_, err = e.Compact(&pb.CompactionRequest{Revision: e.rev()})
	e.wantErr(err, rpctypes.ErrGRPCCorrupt)
	e.wantOK(second(e.Range(&pb.RangeRequest{Key: e.k("a0")})))
	e.wantOK(second(e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: e.k("a0")}}}}})))
	t.Run("http while CORRUPT", func(t *testing.T) {
		compareHTTP(t, p, []httpCase{{path: "/health"}, {path: "/readyz"}, {path: "/readyz?verbose"}, {path: "/readyz/data_corruption"}, {path: "/readyz?exclude=data_corruption"}})
	})
	e.alarm(&pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: member, Alarm: pb.AlarmType_CORRUPT})
	e.wantOK(second(e.Put(&pb.PutRequest{Key: e.k("c"), Value: []byte("x")})))

	// Defragment, Hash (its value is backend-specific), MoveLeader,
	// Downgrade.
	call(e, "Defragment", &pb.DefragmentRequest{}, func(ctx context.Context, s *server) (*pb.DefragmentResponse, error) {
		return maint(s).Defragment(ctx, &pb.DefragmentRequest{})
	})
	call(e, "Hash", &pb.HashRequest{}, func(ctx context.Context, s *server) (*pb.HashResponse, error) {
		r, err := maint(s).Hash(ctx, &pb.HashRequest{})
		if r != nil {
			r.Hash = 0
		}
		return r, err
	})
	for _, target := range []uint64{member, member + 1} {
		req := &pb.MoveLeaderRequest{TargetID: target}
		call(e, "MoveLeader", req, func(ctx context.Context, s *server) (*pb.MoveLeaderResponse, error) {
			return maint(s).MoveLeader(ctx, req)
		})
	}
	for _, v := range []string{"3.5", "3.5.9", "3.4", "3.6", "4.5", "x", ""} {
		req := &pb.DowngradeRequest{Action: pb.DowngradeRequest_VALIDATE, Version: v}
		call(e, "Downgrade", req, func(ctx context.Context, s *server) (*pb.DowngradeResponse, error) {
			return maint(s).Downgrade(ctx, req)
		})
	}
	for _, v := range []string{"3.4", "x"} {
		req := &pb.DowngradeRequest{Action: pb.DowngradeRequest_ENABLE, Version: v}
		call(e, "Downgrade", req, func(ctx context.Context, s *server) (*pb.DowngradeResponse, error) {
			return maint(s).Downgrade(ctx, req)
		})
	}
	cancelReq := &pb.DowngradeRequest{Action: pb.DowngradeRequest_CANCEL}
	call(e, "Downgrade", cancelReq, func(ctx context.Context, s *server) (*pb.DowngradeResponse, error) {
		return maint(s).Downgrade(ctx, cancelReq)
	})

	// Membership. (MemberAdd is not compared: etcd accepts it on one
	// member and then loses its quorum.)
	for _, lin := range []bool{false, true} {
		req := &pb.MemberListRequest{Linearizable: lin}
		call(e, "MemberList", req, func(ctx context.Context, s *server) (*pb.MemberListResponse, error) {
			r, err := clus(s).MemberList(ctx, req)
			if r != nil {
				for _, m := range r.Members {
					if len(m.ClientURLs) != 1 || m.ClientURLs[0] != s.proc.ClientURL {
						t.Errorf("%s: client URLs %v, want %s", s.kind, m.ClientURLs, s.proc.ClientURL)
					}
					m.ClientURLs = nil
				}
			}
			return r, err
		})
	}
	for _, id := range []uint64{member, 12345} {
		rm := &pb.MemberRemoveRequest{ID: id}
		call(e, "MemberRemove", rm, func(ctx context.Context, s *server) (*pb.MemberRemoveResponse, error) {
			return clus(s).MemberRemove(ctx, rm)
		})
		pr := &pb.MemberPromoteRequest{ID: id}
		call(e, "MemberPromote", pr, func(ctx context.Context, s *server) (*pb.MemberPromoteResponse, error) {
			return clus(s).MemberPromote(ctx, pr)
		})
		up := &pb.MemberUpdateRequest{ID: id, PeerURLs: []string{"http://127.0.0.1:2380"}}
		call(e, "MemberUpdate", up, func(ctx context.Context, s *server) (*pb.MemberUpdateResponse, error) {
			r, err := clus(s).MemberUpdate(ctx, up)
			if r != nil {
				for _, m := range r.Members {
					m.ClientURLs = nil
				}
			}
			return r, err
		})
	}
	e.status()
	p.checkIDs(t)

	// Snapshot: etcd's framing on both (the content is each backend's).
	for _, s := range []*server{p.etcd, p.sett} {
		checkSnapshotStream(t, ctx, s)
	}
}

func second[R any](_ R, err error) error { return err }

// checkSnapshotStream reads a whole Snapshot stream and checks etcd's
// framing: the remaining count falls to 0, the last message is the
// SHA-256 of the rest, the version is the storage version, the data is
// whole 512-byte pages.
func checkSnapshotStream(t *testing.T, ctx context.Context, s *server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	st, err := maint(s).Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatalf("%s: Snapshot: %v", s.kind, err)
	}
	var data []byte
	var msgs []*pb.SnapshotResponse
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: Snapshot stream: %v", s.kind, err)
		}
		msgs = append(msgs, r)
	}
	if len(msgs) < 2 {
		t.Fatalf("%s: %d snapshot messages", s.kind, len(msgs))
	}
	for i, m := range msgs[:len(msgs)-1] {
		data = append(data, m.Blob...)
		if m.Version != "3.6.0" || m.Header != nil {
			t.Errorf("%s: message %d: version %q header %v", s.kind, i, m.Version, m.Header)
		}
		if i > 0 && m.RemainingBytes >= msgs[i-1].RemainingBytes {
			t.Errorf("%s: remaining bytes do not fall: %d then %d", s.kind, msgs[i-1].RemainingBytes, m.RemainingBytes)
		}
	}
	last := msgs[len(msgs)-1]
	sum := sha256.Sum256(data)
	if msgs[len(msgs)-2].RemainingBytes != 0 || last.RemainingBytes != 0 || !bytes.Equal(last.Blob, sum[:]) || last.Version != "3.6.0" {
		t.Errorf("%s: bad trailer: remaining %d/%d, sha ok %v, version %q", s.kind,
			msgs[len(msgs)-2].RemainingBytes, last.RemainingBytes, bytes.Equal(last.Blob, sum[:]), last.Version)
	}
	if len(data)%512 != 0 {
		t.Errorf("%s: snapshot of %d bytes is not whole pages", s.kind, len(data))
	}
}

// sortCheckLines sorts the "[+]name ok" lines of a /livez or /readyz
// answer: etcd runs its checks in map order.
func sortCheckLines(body []byte) []byte {
	lines := strings.SplitAfter(string(body), "\n")
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], "[") {
		i++
	}
	sort.Strings(lines[:i])
	return []byte(strings.Join(lines, ""))
}

type httpCase struct {
	method string
	path   string
}

// compareHTTP sends the same HTTP requests to etcd's and sett's client
// URLs and compares status, body and etcd's headers.
func compareHTTP(t *testing.T, p *pair, cases []httpCase) {
	t.Helper()
	cli := &http.Client{Timeout: 10 * time.Second}
	for _, c := range cases {
		if c.method == "" {
			c.method = http.MethodGet
		}
		var got [2]string
		for i, s := range []*server{p.etcd, p.sett} {
			req, err := http.NewRequest(c.method, s.proc.ClientURL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := cli.Do(req)
			if err != nil {
				t.Fatalf("%s %s %s: %v", s.kind, c.method, c.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var b strings.Builder
			fmt.Fprintf(&b, "%d\n", resp.StatusCode)
			for _, h := range []string{"Content-Type", "X-Content-Type-Options", "Allow", "Access-Control-Allow-Origin",
				"Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
				fmt.Fprintf(&b, "%s: %s\n", h, resp.Header.Get(h))
			}
			b.Write(sortCheckLines(body))
			got[i] = b.String()
		}
		if got[0] != got[1] {
			t.Errorf("%s %s\n===== etcd =====\n%s\n===== sett =====\n%s", c.method, c.path, got[0], got[1])
		}
	}
}

// TestHTTPEndpoints compares the HTTP endpoints etcd serves on its client
// port with sett's, and checks /metrics carries the metrics dashboards use.
func TestHTTPEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	p := newPair(t)
	compareHTTP(t, p, []httpCase{
		{path: "/health"}, {path: "/health?serializable=true"}, {path: "/health?exclude=NOSPACE"},
		{method: http.MethodPost, path: "/health"}, {method: http.MethodPut, path: "/readyz"},
		{method: http.MethodOptions, path: "/health"},
		{path: "/livez"}, {path: "/livez?verbose"}, {path: "/livez/serializable_read"},
		{path: "/readyz"}, {path: "/readyz?verbose"}, {path: "/readyz?verbose&exclude=non_learner"},
		{path: "/readyz/linearizable_read"}, {path: "/readyz/data_corruption"}, {path: "/readyz/non_learner"},
		{path: "/readyz/nope"}, {path: "/version"}, {method: http.MethodPost, path: "/version"},
		{path: "/"}, {path: "/nope"}, {path: "/health/x"},
	})

	resp, err := http.Get(p.sett.proc.ClientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"etcd_server_has_leader 1", "etcd_server_is_leader 1", "etcd_mvcc_db_total_size_in_bytes ",
		"etcd_mvcc_db_total_size_in_use_in_bytes ", "etcd_disk_backend_commit_duration_seconds_bucket",
		"etcd_debugging_mvcc_keys_total ", "etcd_debugging_mvcc_current_revision ", "etcd_server_quota_backend_bytes 2.147483648e+09",
		`etcd_server_version{server_version="3.6.16"} 1`, `etcd_cluster_version{cluster_version="3.6"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} `,
		`grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}`,
		`grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Status",grpc_service="etcdserverpb.Maintenance",grpc_type="unary"} 0`,
		"process_resident_memory_bytes ", "go_goroutines ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("sett's /metrics:\n%s", body)
	}
}

// TestQuotaNoSpace fills a sett with a small quota until writes are
// refused with NOSPACE, then recovers as etcd's documentation says:
// compact, defragment, disarm. Nothing written before is lost.
func TestQuotaNoSpace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sett")
	}
	proc := testproc.StartSett(t, testproc.Options{ExtraArgs: []string{
		"--quota-backend-bytes=" + fmt.Sprint(6<<20), "--storage-memtable-bytes=" + fmt.Sprint(2<<20), "--log-level=warn",
	}})
	s := connect(t, "sett", proc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := maint(s)
	val := bytes.Repeat([]byte("x"), 48<<10)
	latest := map[string]string{}
	var filled error
	for i := 0; i < 2000 && filled == nil; i++ {
		k, v := fmt.Sprintf("key%d", i%8), fmt.Sprintf("%s%d", val, i)
		if _, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(v)}); err != nil {
			filled = err
			break
		}
		latest[k] = v
	}
	if !errors.Is(filled, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("writes ended with %v, want %v", filled, rpctypes.ErrGRPCNoSpace)
	}
	st, err := m.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	al, err := m.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil {
		t.Fatal(err)
	}
	if len(al.Alarms) != 1 || al.Alarms[0].Alarm != pb.AlarmType_NOSPACE || al.Alarms[0].MemberID != st.Header.MemberId ||
		len(st.Errors) != 1 || st.Errors[0] != al.Alarms[0].String() {
		t.Fatalf("alarms %v, status errors %q", al.Alarms, st.Errors)
	}
	t.Logf("NOSPACE at db_size %d (quota %d)", st.DbSize, st.DbSizeQuota)
	// Still refused, small or not, while the alarm is on; reads work.
	if _, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte("small"), Value: []byte("v")}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("small put with NOSPACE: %v", err)
	}
	r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("key"), RangeEnd: []byte("kez"), CountOnly: true})
	if err != nil || r.Count != int64(len(latest)) {
		t.Fatalf("count %v, %v", r, err)
	}
	if _, err := s.kv.Compact(ctx, &pb.CompactionRequest{Revision: r.Header.Revision, Physical: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Defragment(ctx, &pb.DefragmentRequest{}); err != nil {
		t.Fatal(err)
	}
	st2, err := m.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after compaction and defragmentation: db_size %d, in use %d", st2.DbSize, st2.DbSizeInUse)
	if st2.DbSize >= st.DbSize/2 {
		t.Errorf("defragmentation left %d of %d bytes", st2.DbSize, st.DbSize)
	}
	if _, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte("small"), Value: []byte("v")}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("put before disarming: %v", err)
	}
	if _, err := m.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte("small"), Value: []byte("v")}); err != nil {
		t.Fatalf("put after disarming: %v", err)
	}
	latest["small"] = "v"
	// Nothing lost, also across a restart.
	for round := 0; round < 2; round++ {
		for k, v := range latest {
			r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte(k)})
			if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != v {
				t.Fatalf("round %d: %s lost: %v %v", round, k, r, err)
			}
		}
		if round == 0 {
			s.cli.Close()
			proc.Restart(t)
			s = connect(t, "sett", proc)
		}
	}
	if al, err := maint(s).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET}); err != nil || len(al.Alarms) != 0 {
		t.Fatalf("alarms after restart: %v %v", al, err)
	}
}

// TestClientHTTPURLs: with --listen-client-http-urls, HTTP is served there
// and the client URLs serve gRPC alone, as in etcd.
func TestClientHTTPURLs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sett")
	}
	hurl := fmt.Sprintf("http://127.0.0.1:%d", testproc.FreePort(t))
	proc := testproc.StartSett(t, testproc.Options{ExtraArgs: []string{"--listen-client-http-urls=" + hurl, "--log-level=warn"}})
	cli := &http.Client{Timeout: 5 * time.Second}
	resp, err := cli.Get(hurl + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"health":"true","reason":""}` {
		t.Errorf("/health on the HTTP URL: %s %q", resp.Status, body)
	}
	if resp, err := cli.Get(proc.ClientURL + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("HTTP served on the gRPC URL: %s", resp.Status)
	}
	if out, err := testproc.Etcdctl(t, proc.ClientURL, "put", "k", "v"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Errorf("gRPC on the client URL: %q %v", out, err)
	}
}
