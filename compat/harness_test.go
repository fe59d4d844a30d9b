package compat

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	gogoproto "github.com/gogo/protobuf/proto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/internal/testproc"
)

// callTimeout bounds one call to one server.
const callTimeout = 15 * time.Second

// server is one running process and the raw gRPC clients talking to it.
type server struct {
	kind  string // "etcd" or "sett"
	proc  *testproc.Proc
	cli   *clientv3.Client
	kv    pb.KVClient
	lease pb.LeaseClient
}

// pair is a reference etcd and a sett started with identical flags (and
// identical advertised peer URL, cluster token and name, so that both derive
// the same cluster and member IDs).
type pair struct {
	owner *testing.T // the test the processes belong to
	extra []string   // extra flags passed to both

	etcd, sett *server

	mu sync.Mutex
	// ids[0] is etcd's (cluster, member, term), ids[1] sett's, as first seen
	// in a top-level response header.
	ids     [2][3]uint64
	idsSeen bool
	// idProblems are header ID anomalies seen since the last checkIDs.
	idProblems []string
	// rev is the newest header revision etcd has answered with.
	rev int64
	// diverged is set when the servers' states are known to differ.
	diverged bool
}

// newPair starts etcd and sett. extra flags are given to both.
func newPair(t *testing.T, extra ...string) *pair {
	t.Helper()
	p := &pair{owner: t, extra: extra}
	p.start(t)
	return p
}

func (p *pair) start(t *testing.T) {
	t.Helper()
	// The advertised peer URL is the same for both servers, and fixed, so
	// that both derive the same member and cluster IDs, the same in every
	// run. Nothing listens on it: each server listens for peers on its own
	// port, and a one-member cluster never dials its advertised URL.
	const adv = "http://127.0.0.1:2380"
	opts := testproc.Options{
		Name:           "compat",
		InitialCluster: "compat=" + adv,
		ExtraArgs: append([]string{
			"--initial-advertise-peer-urls=" + adv,
			"--initial-cluster-token=sett-compat",
			"--max-txn-ops=128",
			"--max-request-bytes=1572864",
			"--log-level=warn",
		}, p.extra...),
	}
	p.etcd = connect(t, "etcd", testproc.StartEtcd(t, opts))
	p.sett = connect(t, "sett", testproc.StartSett(t, opts))
	p.mu.Lock()
	p.idsSeen, p.idProblems, p.rev, p.diverged = false, nil, 0, false
	p.mu.Unlock()
}

// restart replaces both servers by fresh ones (new data dirs), used when
// their revisions diverged so that later comparisons stay meaningful.
func (p *pair) restart(t *testing.T) {
	t.Helper()
	for _, s := range []*server{p.etcd, p.sett} {
		s.cli.Close()
		s.proc.Stop()
	}
	p.start(t)
}

func connect(t *testing.T, kind string, proc *testproc.Proc) *server {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          []string{proc.ClientURL},
		DialTimeout:        10 * time.Second,
		MaxCallSendMsgSize: 16 << 20, // let the server, not the client, refuse big requests
		Logger:             zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("%s: clientv3.New: %v", kind, err)
	}
	t.Cleanup(func() { cli.Close() })
	conn := cli.ActiveConnection()
	s := &server{kind: kind, proc: proc, cli: cli, kv: pb.NewKVClient(conn), lease: pb.NewLeaseClient(conn)}
	// The client port accepting connections does not mean a leader exists
	// yet: wait for a linearizable read to succeed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("compat-ready")})
		cancel()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s not serving: %v", kind, proc.ClientURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// message is what every etcd request and response type (gogo-generated)
// provides.
type message interface {
	gogoproto.Message
	Marshal() ([]byte, error)
}

type response interface {
	message
	GetHeader() *pb.ResponseHeader
}

// env runs one scenario's calls against both servers of a pair.
type env struct {
	t     *testing.T
	p     *pair
	pre   string // key prefix of the scenario
	ctx   string // extra label, e.g. "seed 3 op 17"
	step  int
	fails int // mismatches reported so far
	// stats counts etcd's outcomes per RPC ("Txn ok", "Put InvalidArgument", …).
	stats map[string]int
}

func newEnv(t *testing.T, p *pair, pre string) *env {
	return &env{t: t, p: p, pre: pre, stats: map[string]int{}}
}

// k is the scenario's key s.
func (e *env) k(s string) []byte { return []byte(e.pre + s) }

// maxReported bounds the mismatches one env reports in full.
const maxReported = 25

type outcome[R response] struct {
	resp R
	err  error
}

// call sends req to both servers concurrently with f and compares the
// answers. It returns etcd's answer, which the scenario uses to build
// later requests (so that both servers keep receiving identical requests
// even after a divergence).
func call[R response](e *env, op string, req message, f func(ctx context.Context, s *server) (R, error)) (R, error) {
	e.t.Helper()
	e.step++
	var out [2]outcome[R]
	var wg sync.WaitGroup
	for i, s := range []*server{e.p.etcd, e.p.sett} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			out[i].resp, out[i].err = f(ctx, s)
		}()
	}
	wg.Wait()
	if out[0].err == nil {
		e.p.noteRev(out[0].resp.GetHeader())
		e.stats[op+" ok"]++
	} else {
		e.stats[op+" "+status.Code(out[0].err).String()]++
	}
	if diff := e.p.compare(out[0].resp, out[0].err, out[1].resp, out[1].err); diff != "" {
		e.fails++
		label := fmt.Sprintf("step %d", e.step)
		if e.ctx != "" {
			label = e.ctx + ", " + label
		}
		if e.fails <= maxReported {
			e.t.Errorf("MISMATCH (%s) %s %s\n%s", label, op, describe(req), diff)
		} else if e.fails == maxReported+1 {
			e.t.Errorf("more than %d mismatches; not reporting the rest", maxReported)
		}
		// Once the revisions differ every later answer would too: stop
		// the scenario (runScenarios then restarts both servers).
		if er, sr, err := e.p.revisions(); err != nil || er != sr {
			e.p.diverged = true
			e.t.Fatalf("(%s) revisions diverged after this mismatch: etcd %d, sett %d (err %v); stopping the scenario; %s",
				label, er, sr, err, e.p.probeSettWrites())
		}
	}
	return out[0].resp, out[0].err
}

// describe prints a request compactly, shortening large byte fields.
func describe(m message) string {
	s := collapseRuns(gogoproto.CompactTextString(m))
	if len(s) > 600 {
		s = s[:300] + fmt.Sprintf(" …(%d chars)… ", len(s)-600) + s[len(s)-300:]
	}
	return "{" + s + "}"
}

// compare returns "" if the answers are equal, else a report of both.
// It normalises the top-level headers (recording their IDs for checkIDs).
func (p *pair) compare(eResp response, eErr error, sResp response, sErr error) string {
	switch {
	case eErr != nil && sErr != nil:
		es, ss := status.Convert(eErr), status.Convert(sErr)
		if es.Code() == ss.Code() && es.Message() == ss.Message() {
			return ""
		}
		return fmt.Sprintf("  etcd error: code=%s msg=%q\n  sett error: code=%s msg=%q", es.Code(), short(es.Message()), ss.Code(), short(ss.Message()))
	case eErr != nil:
		es := status.Convert(eErr)
		return fmt.Sprintf("  etcd error: code=%s msg=%q\n  sett answered:\n%s", es.Code(), short(es.Message()), indent(text(sResp)))
	case sErr != nil:
		ss := status.Convert(sErr)
		return fmt.Sprintf("  etcd answered:\n%s\n  sett error: code=%s msg=%q", indent(text(eResp)), ss.Code(), short(ss.Message()))
	}
	p.noteHeaders(eResp.GetHeader(), sResp.GetHeader())
	eb, err1 := eResp.Marshal()
	sb, err2 := sResp.Marshal()
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("  marshal: etcd %v, sett %v", err1, err2)
	}
	if bytes.Equal(eb, sb) {
		return ""
	}
	et, st := text(eResp), text(sResp)
	return fmt.Sprintf("  etcd answered:\n%s\n  sett answered:\n%s\n  first difference:\n%s", indent(et), indent(st), firstDiff(et, st))
}

// noteHeaders records and then zeroes the fields of the top-level headers
// that legitimately differ (cluster and member IDs when URLs differ, raft
// term); checkIDs reports on them.
func (p *pair) noteHeaders(eh, sh *pb.ResponseHeader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if eh == nil || sh == nil {
		return // the byte comparison reports it
	}
	got := [2][3]uint64{
		{eh.ClusterId, eh.MemberId, eh.RaftTerm},
		{sh.ClusterId, sh.MemberId, sh.RaftTerm},
	}
	if !p.idsSeen {
		p.ids, p.idsSeen = got, true
	}
	for i, who := range []string{"etcd", "sett"} {
		if got[i][0] != p.ids[i][0] || got[i][1] != p.ids[i][1] {
			p.problem(fmt.Sprintf("%s header IDs changed: cluster_id %x member_id %x, first seen %x %x",
				who, got[i][0], got[i][1], p.ids[i][0], p.ids[i][1]))
		}
		if got[i][0] == 0 || got[i][1] == 0 || got[i][2] == 0 {
			p.problem(fmt.Sprintf("%s header has a zero field: cluster_id=%x member_id=%x raft_term=%d",
				who, got[i][0], got[i][1], got[i][2]))
		}
	}
	for _, h := range []*pb.ResponseHeader{eh, sh} {
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	}
}

// noteRev tracks the newest revision etcd has answered with.
func (p *pair) noteRev(h *pb.ResponseHeader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h != nil && h.Revision > p.rev {
		p.rev = h.Revision
	}
}

func (p *pair) problem(s string) {
	for _, q := range p.idProblems {
		if q == s {
			return
		}
	}
	if len(p.idProblems) < 20 {
		p.idProblems = append(p.idProblems, s)
	}
}

// checkIDs reports header ID anomalies: sett's cluster and member IDs must
// equal etcd's (both run with the same name, advertised peer URL and
// token) and be stable and non-zero.
func (p *pair) checkIDs(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.idsSeen {
		t.Errorf("no response headers compared yet")
		return
	}
	e, s := p.ids[0], p.ids[1]
	t.Logf("etcd: cluster_id=%x member_id=%x raft_term=%d (%s); sett: cluster_id=%x member_id=%x raft_term=%d (%s)",
		e[0], e[1], e[2], p.etcd.proc.Binary, s[0], s[1], s[2], p.sett.proc.Binary)
	if e[0] != s[0] || e[1] != s[1] {
		t.Errorf("header IDs differ: etcd cluster_id=%x member_id=%x, sett cluster_id=%x member_id=%x",
			e[0], e[1], s[0], s[1])
	}
	for _, q := range p.idProblems {
		t.Error(q)
	}
	p.idProblems = nil
}

// revisions returns each server's current revision (from a Range header).
func (p *pair) revisions() (int64, int64, error) {
	var revs [2]int64
	for i, s := range []*server{p.etcd, p.sett} {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("compat-probe")})
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %v", s.kind, err)
		}
		revs[i] = r.Header.Revision
	}
	return revs[0], revs[1], nil
}

// probeSettWrites tells whether sett still accepts a small write (its
// state no longer matters: the servers are restarted after a divergence).
func (p *pair) probeSettWrites() string {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := p.sett.kv.Put(ctx, &pb.PutRequest{Key: []byte("compat-write-probe"), Value: []byte("v")})
	if err != nil {
		return fmt.Sprintf("sett now FAILS a small Put: %v", err)
	}
	return "sett still accepts a small Put"
}

// realign restarts both servers if their states diverged, so that one
// divergence does not make every later comparison fail.
func (p *pair) realign(t *testing.T, after string) {
	t.Helper()
	er, sr, err := p.revisions()
	if err == nil && er == sr && !p.diverged {
		return
	}
	t.Logf("after %s: states diverged (revisions: etcd %d, sett %d, err %v); restarting both servers on fresh data dirs", after, er, sr, err)
	p.restart(t)
}

type scenario struct {
	name string
	run  func(e *env)
}

// runScenarios runs each scenario as a subtest, in order, on one pair,
// with key prefix "/<group>/<name>/".
func runScenarios(t *testing.T, p *pair, group string, scs []scenario) {
	t.Helper()
	for _, sc := range scs {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(newEnv(t, p, "/"+group+"/"+sc.name+"/"))
		})
		p.realign(t, sc.name)
	}
}

func text(m gogoproto.Message) string {
	if m == nil {
		return "<nil>"
	}
	s := collapseRuns(gogoproto.MarshalTextString(m))
	if len(s) > 20000 {
		s = s[:10000] + fmt.Sprintf("\n…(%d chars)…\n", len(s)-20000) + s[len(s)-10000:]
	}
	return s
}

// collapseRuns shortens runs of more than 16 equal bytes (the big keys and
// values of some scenarios) to "x…(N×x)".
func collapseRuns(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if n := j - i; n > 16 {
			fmt.Fprintf(&b, "%c…(%d×%c)", s[i], n, s[i])
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

// short abbreviates a long error message.
func short(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("…(%d more bytes)", len(s)-300)
	}
	return s
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    <empty>"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// firstDiff shows the first differing line of two texts with a little
// context.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("    line %d: etcd %q\n    line %d: sett %q", i+1, strings.TrimSpace(x), i+1, strings.TrimSpace(y))
		}
	}
	return "    (texts equal; encodings differ, e.g. field presence)"
}

// Calls, one per RPC.

func (e *env) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	e.t.Helper()
	return call(e, "Range", r, func(ctx context.Context, s *server) (*pb.RangeResponse, error) { return s.kv.Range(ctx, r) })
}

func (e *env) Put(r *pb.PutRequest) (*pb.PutResponse, error) {
	e.t.Helper()
	return call(e, "Put", r, func(ctx context.Context, s *server) (*pb.PutResponse, error) { return s.kv.Put(ctx, r) })
}

func (e *env) Delete(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	e.t.Helper()
	return call(e, "DeleteRange", r, func(ctx context.Context, s *server) (*pb.DeleteRangeResponse, error) {
		return s.kv.DeleteRange(ctx, r)
	})
}

func (e *env) Txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	e.t.Helper()
	return call(e, "Txn", r, func(ctx context.Context, s *server) (*pb.TxnResponse, error) { return s.kv.Txn(ctx, r) })
}

func (e *env) Compact(r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	e.t.Helper()
	return call(e, "Compact", r, func(ctx context.Context, s *server) (*pb.CompactionResponse, error) {
		return s.kv.Compact(ctx, r)
	})
}

func (e *env) Grant(r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	e.t.Helper()
	return call(e, "LeaseGrant", r, func(ctx context.Context, s *server) (*pb.LeaseGrantResponse, error) {
		return s.lease.LeaseGrant(ctx, r)
	})
}

func (e *env) Revoke(r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	e.t.Helper()
	return call(e, "LeaseRevoke", r, func(ctx context.Context, s *server) (*pb.LeaseRevokeResponse, error) {
		return s.lease.LeaseRevoke(ctx, r)
	})
}

// Expectations on etcd's own answers: they check that a scenario exercises
// what it claims (a failure here is a bug in the test, not in sett).

func (e *env) wantOK(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("test bug: etcd failed step %d unexpectedly: %v", e.step, err)
	}
}

func (e *env) wantErr(err, want error) {
	e.t.Helper()
	if err == nil {
		e.t.Fatalf("test bug: etcd accepted step %d; want error %v", e.step, want)
	}
	g, w := status.Convert(err), status.Convert(want)
	if g.Code() != w.Code() || g.Message() != w.Message() {
		e.t.Fatalf("test bug: etcd answered step %d with %v; want %v", e.step, err, want)
	}
}

// logStats logs how etcd answered the calls made so far.
func (e *env) logStats() {
	keys := make([]string, 0, len(e.stats))
	for k := range e.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, e.stats[k])
	}
	e.t.Logf("%d calls, etcd's outcomes:%s", e.step, b.String())
}

// rev is the newest revision etcd has reported.
func (e *env) rev() int64 {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return e.p.rev
}

// TestCompareReportsDifferences checks the comparison itself on made-up
// answers.
func TestCompareReportsDifferences(t *testing.T) {
	p := &pair{}
	mk := func(rev int64, more bool, member uint64, kvs ...string) *pb.RangeResponse {
		r := &pb.RangeResponse{Header: &pb.ResponseHeader{ClusterId: 1, MemberId: member, RaftTerm: member, Revision: rev}, More: more}
		for _, k := range kvs {
			r.Kvs = append(r.Kvs, &mvccpb.KeyValue{Key: []byte(k), Value: []byte("v")})
		}
		r.Count = int64(len(kvs))
		return r
	}
	same := []struct{ a, b *pb.RangeResponse }{
		{mk(5, false, 1, "a"), mk(5, false, 1, "a")},
		{mk(5, false, 1, "a"), mk(5, false, 2, "a")}, // IDs and term are normalised
		{mk(5, false, 1), &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 5}, Kvs: []*mvccpb.KeyValue{}}},
	}
	for i, c := range same {
		if d := p.compare(c.a, nil, c.b, nil); d != "" {
			t.Errorf("case %d: equal answers reported different:\n%s", i, d)
		}
	}
	differ := []struct {
		a, b       *pb.RangeResponse
		aErr, bErr error
	}{
		{a: mk(5, false, 1, "a"), b: mk(6, false, 1, "a")},
		{a: mk(5, false, 1, "a"), b: mk(5, true, 1, "a")},
		{a: mk(5, false, 1, "a"), b: mk(5, false, 1, "b")},
		{a: mk(5, false, 1, "a", "b"), b: mk(5, false, 1, "b", "a")},
		{a: mk(5, false, 1), b: &pb.RangeResponse{}}, // header present vs absent
		{a: mk(5, false, 1), bErr: rpctypes.ErrGRPCCompacted},
		{aErr: rpctypes.ErrGRPCCompacted, b: mk(5, false, 1)},
		{aErr: rpctypes.ErrGRPCCompacted, bErr: rpctypes.ErrGRPCFutureRev},
		{aErr: rpctypes.ErrGRPCKeyNotFound, bErr: status.Error(codes.NotFound, "etcdserver: key not found")},
	}
	for i, c := range differ {
		if d := p.compare(c.a, c.aErr, c.b, c.bErr); d == "" {
			t.Errorf("case %d: different answers reported equal", i)
		}
	}
	if d := p.compare(nil, rpctypes.ErrGRPCCompacted, nil, rpctypes.ErrGRPCCompacted); d != "" {
		t.Errorf("equal errors reported different: %s", d)
	}
}

// startKind starts real etcd or sett ("etcd" or "sett") with opts.
func startKind(t *testing.T, kind string, opts testproc.Options) *testproc.Proc {
	t.Helper()
	if kind == "etcd" {
		return testproc.StartEtcd(t, opts)
	}
	return testproc.StartSett(t, opts)
}
