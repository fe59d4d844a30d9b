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

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"
)

// watchNotifyInterval is given to both servers as
// --watch-progress-notify-interval; only scWatchProgressNotify creates
// watchers with progress_notify.
const watchNotifyInterval = time.Second

// TestWatchDiff opens the same raw Watch streams on etcd and sett, sends
// the same requests and writes, and compares the responses each stream
// carries: per stream in order, or per watch ID where etcd's order between
// watchers is not defined (it hands a revision to a stream's watchers in
// map order).
func TestWatchDiff(t *testing.T) {
	p := newPair(t, "--watch-progress-notify-interval="+watchNotifyInterval.String())
	e := newEnv(t, p, "/watch/")
	e.Range(&pb.RangeRequest{Key: e.k("probe")})
	runScenarios(t, p, "watch", watchScenarios)
	t.Run("HeaderIDs", func(t *testing.T) { p.checkIDs(t) })
}

var watchScenarios = []scenario{
	{"01-ranges", scWatchRanges},
	{"02-prev-kv-filters", scWatchPrevKVFilters},
	{"03-start-revisions", scWatchStartRevisions},
	{"04-compacted", scWatchCompacted},
	{"05-compacted-at-a-deletion", scWatchCompactedAtDeletion},
	{"06-watch-ids-cancel", scWatchIDs},
	{"07-invalid", scWatchInvalid},
	{"08-progress-request", scWatchProgress},
	{"09-fragment", scWatchFragment},
	{"10-lease-revoke", scWatchLeaseRevoke},
	{"11-k8s", scWatchK8s},
	{"12-close-send", scWatchCloseSend},
	{"13-many-watchers", scWatchMany},
	{"14-catch-up-batches", scWatchBatches},
	{"15-progress-notify", scWatchProgressNotify},
}

type watchMsg struct {
	resp *pb.WatchResponse
	err  error
}

// wstream is one Watch stream on each server.
type wstream struct {
	e      *env
	cancel context.CancelFunc
	ws     [2]pb.Watch_WatchClient
	ch     [2]chan watchMsg
}

// openWatch opens a stream on both servers; requireLeader adds clientv3's
// "require leader" metadata, as Kubernetes does.
func (e *env) openWatch(requireLeader bool) *wstream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if requireLeader {
		ctx = clientv3.WithRequireLeader(ctx)
	}
	w := &wstream{e: e, cancel: cancel}
	e.t.Cleanup(cancel)
	for i, s := range []*server{e.p.etcd, e.p.sett} {
		ws, err := pb.NewWatchClient(s.cli.ActiveConnection()).Watch(ctx)
		if err != nil {
			e.t.Fatalf("%s: Watch: %v", s.kind, err)
		}
		w.ws[i] = ws
		w.ch[i] = make(chan watchMsg, 1<<14)
		go func() {
			for {
				r, err := ws.Recv()
				select {
				case w.ch[i] <- watchMsg{r, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return w
}

func (w *wstream) close() { w.cancel() }

func (w *wstream) send(req *pb.WatchRequest) {
	w.e.t.Helper()
	for i, ws := range w.ws {
		if err := ws.Send(req); err != nil {
			w.e.t.Fatalf("%s: Send: %v", []string{"etcd", "sett"}[i], err)
		}
	}
}

// watchOpt changes a create request.
type watchOpt func(*pb.WatchCreateRequest)

func wEnd(end []byte) watchOpt           { return func(c *pb.WatchCreateRequest) { c.RangeEnd = end } }
func wRev(rev int64) watchOpt            { return func(c *pb.WatchCreateRequest) { c.StartRevision = rev } }
func wID(id int64) watchOpt              { return func(c *pb.WatchCreateRequest) { c.WatchId = id } }
func wPrevKV(c *pb.WatchCreateRequest)   { c.PrevKv = true }
func wFragment(c *pb.WatchCreateRequest) { c.Fragment = true }
func wNotify(c *pb.WatchCreateRequest)   { c.ProgressNotify = true }
func wFilters(f ...pb.WatchCreateRequest_FilterType) watchOpt {
	return func(c *pb.WatchCreateRequest) { c.Filters = f }
}

func (w *wstream) create(key []byte, opts ...watchOpt) {
	w.e.t.Helper()
	c := &pb.WatchCreateRequest{Key: key}
	for _, o := range opts {
		o(c)
	}
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}})
}

func (w *wstream) cancelWatch(id int64) {
	w.e.t.Helper()
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

func (w *wstream) progress() {
	w.e.t.Helper()
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

// etcdQuiet is how long etcd's stream must stay silent for a step to be
// over: etcd syncs watchers starting in the past every 100 ms.
const etcdQuiet = 350 * time.Millisecond

// drain reads ch until it is quiet for quiet (or until it has want
// messages and then stays quiet for quiet), an error, or max.
func drain(ch chan watchMsg, quiet time.Duration, want int, max time.Duration) []watchMsg {
	var out []watchMsg
	deadline := time.After(max)
	for {
		wait := quiet
		if want >= 0 && len(out) < want {
			wait = max
		}
		select {
		case m := <-ch:
			out = append(out, m)
			if m.err != nil {
				return out
			}
		case <-time.After(wait):
			return out
		case <-deadline:
			return out
		}
	}
}

// compare collects what both streams sent since the last call and
// compares it: byID compares each watch ID's responses in order (ID -1,
// the stream-wide progress responses, is one more group); otherwise the
// whole stream in order. It returns etcd's responses.
func (w *wstream) compare(what string, byID bool) []*pb.WatchResponse {
	w.e.t.Helper()
	e := w.e
	e.step++
	var got [2][]watchMsg
	got[0] = drain(w.ch[0], etcdQuiet, -1, 15*time.Second)
	got[1] = drain(w.ch[1], 100*time.Millisecond, len(got[0]), 5*time.Second)
	groups := func(ms []watchMsg) map[string][]watchMsg {
		g := map[string][]watchMsg{}
		for _, m := range ms {
			k := "stream"
			if byID {
				k = "error"
				if m.resp != nil {
					k = fmt.Sprintf("watch_id %d", m.resp.WatchId)
				}
			}
			g[k] = append(g[k], m)
		}
		return g
	}
	eg, sg := groups(got[0]), groups(got[1])
	keys := map[string]bool{}
	for k := range eg {
		keys[k] = true
	}
	for k := range sg {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if d := w.diff(eg[k], sg[k]); d != "" {
			e.fails++
			if e.fails <= maxReported {
				e.t.Errorf("MISMATCH (step %d, %s) %s:\n%s", e.step, what, k, d)
			}
		}
	}
	var out []*pb.WatchResponse
	for _, m := range got[0] {
		if m.resp != nil {
			out = append(out, m.resp)
		}
	}
	return out
}

// diff compares two sequences of stream messages, normalising headers.
func (w *wstream) diff(es, ss []watchMsg) string {
	n := max(len(es), len(ss))
	same := len(es) == len(ss)
	for i := 0; same && i < n; i++ {
		same = w.sameMsg(es[i], ss[i])
	}
	if same {
		return ""
	}
	show := func(ms []watchMsg) string {
		var b strings.Builder
		for i, m := range ms {
			if i == 12 && len(ms) > 14 {
				fmt.Fprintf(&b, "    … %d more\n", len(ms)-i)
				break
			}
			if m.err != nil {
				st := status.Convert(m.err)
				fmt.Fprintf(&b, "    [%d] error code=%s msg=%q\n", i, st.Code(), st.Message())
				continue
			}
			fmt.Fprintf(&b, "    [%d] %s\n", i, strings.ReplaceAll(collapseRuns(text(m.resp)), "\n", " "))
		}
		if len(ms) == 0 {
			b.WriteString("    <nothing>\n")
		}
		return b.String()
	}
	return fmt.Sprintf("  etcd sent %d:\n%s  sett sent %d:\n%s", len(es), show(es), len(ss), show(ss))
}

func (w *wstream) sameMsg(em, sm watchMsg) bool {
	if em.err != nil || sm.err != nil {
		if em.err == nil || sm.err == nil {
			return false
		}
		es, ss := status.Convert(em.err), status.Convert(sm.err)
		return es.Code() == ss.Code() && es.Message() == ss.Message()
	}
	// Normalize copies: a scenario may compare one message several times.
	er, sr := *em.resp, *sm.resp
	if er.Header != nil && sr.Header != nil {
		eh, sh := *er.Header, *sr.Header
		er.Header, sr.Header = &eh, &sh
	}
	w.e.p.noteHeaders(er.Header, sr.Header)
	eb, err1 := er.Marshal()
	sb, err2 := sr.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(eb, sb)
}

// wantCount checks a scenario's premise on etcd's answers.
func (e *env) wantCount(resps []*pb.WatchResponse, n int, what string) {
	e.t.Helper()
	if len(resps) != n {
		var b strings.Builder
		for _, r := range resps {
			b.WriteString("\n  " + strings.ReplaceAll(collapseRuns(text(r)), "\n", " "))
		}
		e.t.Fatalf("test bug: etcd sent %d responses for %s, want %d:%s", len(resps), what, n, b.String())
	}
}

// ---------------------------------------------------------------- scenarios

func scWatchRanges(e *env) {
	w := e.openWatch(false)
	w.create(e.k("a"))                                // 0: one key
	w.create(e.k("a"), wEnd(e.k("c")))                // 1: [a, c)
	w.create(e.k(""), wEnd(prefixEnd(e.k(""))))       // 2: the scenario's prefix
	w.create(e.k("b"), wEnd(fromKey))                 // 3: every key from b
	w.create(nil)                                     // 4: empty key: "\x00"
	w.create(e.k("zzz"), wEnd(prefixEnd(e.k("zzz")))) // 5: nothing written
	w.create([]byte{0}, wEnd(fromKey))                // 6: every key
	w.create(e.k("c"), wEnd(append(e.k("c"), 0)))     // 7: range of one key
	e.wantCount(w.compare("create", false), 8, "8 creates")
	e.put("a", "1")
	e.put("b", "1")
	e.put("c", "1")
	e.putAll("a", "2", "b", "2", "d", "1")
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		putOp(&pb.PutRequest{Key: e.k("c"), Value: []byte("2")}),
		delOp(&pb.DeleteRangeRequest{Key: e.k("a")}),
		putOp(&pb.PutRequest{Key: e.k("e"), Value: []byte("1")}),
	}})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("a"), RangeEnd: e.k("d")})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("nothing")})
	e.Put(&pb.PutRequest{Key: []byte{0}, Value: []byte("zero")})
	e.Put(&pb.PutRequest{Key: e.k("c"), Value: []byte("3"), IgnoreValue: false})
	w.compare("events", true)
	w.close()
}

func scWatchPrevKVFilters(e *env) {
	w := e.openWatch(false)
	all := func(opts ...watchOpt) { w.create(e.k(""), append([]watchOpt{wEnd(prefixEnd(e.k("")))}, opts...)...) }
	all(wPrevKV)
	all(wFilters(pb.WatchCreateRequest_NOPUT))
	all(wFilters(pb.WatchCreateRequest_NODELETE), wPrevKV)
	all(wFilters(pb.WatchCreateRequest_NOPUT, pb.WatchCreateRequest_NODELETE))
	all(wFilters(pb.WatchCreateRequest_NOPUT), wPrevKV)
	all(wFilters(pb.WatchCreateRequest_FilterType(7))) // unknown: ignored
	w.create(e.k("a"), wPrevKV)
	e.wantCount(w.compare("create", false), 7, "7 creates")
	e.put("a", "1") // create: no prev_kv
	e.put("a", "2")
	e.put("b", "1")
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("a")})
	e.put("a", "3") // created again
	e.putAll("a", "4", "b", "2", "c", "1")
	e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		delOp(&pb.DeleteRangeRequest{Key: e.k("b")}),
		putOp(&pb.PutRequest{Key: e.k("d"), Value: []byte("1")}),
	}})
	e.Put(&pb.PutRequest{Key: e.k("a"), IgnoreValue: true})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k(""))})
	w.compare("events", true)
	w.close()
}

func scWatchStartRevisions(e *env) {
	first := e.put("a", "1").Header.Revision
	e.put("b", "1")
	e.put("a", "2")
	e.putAll("a", "3", "b", "2")
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("b")})
	e.put("c", "1")
	cur := e.rev()
	prefix := wEnd(prefixEnd(e.k("")))
	// One stream per start, so that each stream's order is defined.
	for _, c := range []struct {
		name string
		rev  int64
	}{
		{"first revision", first}, {"before the first", first - 1}, {"middle", first + 3},
		{"current", cur}, {"next", cur + 1}, {"future", cur + 3}, {"zero", 0},
	} {
		w := e.openWatch(false)
		w.create(e.k(""), prefix, wRev(c.rev), wPrevKV)
		w.compare("create from "+c.name, false)
		e.put("d", c.name)
		w.compare("write after create from "+c.name, false)
		w.close()
	}
	// All on one stream, then writes crossing the future starts.
	w := e.openWatch(false)
	for _, rev := range []int64{first, first + 3, e.rev(), e.rev() + 1, e.rev() + 2, e.rev() + 4, 0} {
		w.create(e.k(""), prefix, wRev(rev))
	}
	w.compare("creates", true)
	for i := range 5 {
		e.put("e", fmt.Sprint(i))
	}
	w.compare("writes", true)
	w.close()
}

func scWatchCompacted(e *env) {
	for i := range 6 {
		e.put("a", fmt.Sprint(i))
	}
	at := e.put("b", "1").Header.Revision // a put: see scWatchCompactedAtDeletion
	e.put("a", "after")
	_, err := e.Compact(&pb.CompactionRequest{Revision: at})
	e.wantOK(err)
	e.put("c", "1")
	for _, c := range []struct {
		name string
		rev  int64
	}{{"below", at - 1}, {"far below", 1}, {"at", at}, {"above", at + 1}, {"negative", -1}, {"very negative", -100}} {
		w := e.openWatch(false)
		w.create(e.k(""), wEnd(prefixEnd(e.k(""))), wRev(c.rev), wPrevKV)
		w.compare("create "+c.name+" the compaction point", false)
		w.close()
	}
	// A compacted watcher stays known: duplicate ID, no progress, cancel.
	w := e.openWatch(false)
	w.create(e.k("a"), wRev(at-1), wID(3))
	w.compare("compacted watcher", false)
	w.create(e.k("a"), wID(3))
	w.compare("same ID again", false)
	w.progress()
	w.compare("progress with a compacted watcher", false)
	e.put("a", "more")
	w.compare("write", false)
	w.cancelWatch(3)
	w.compare("cancel the compacted watcher", false)
	w.create(e.k("a"), wID(3))
	w.compare("ID free again", false)
	w.progress()
	w.compare("progress", false)
	w.close()
}

// scWatchCompactedAtDeletion: after Compact(C) where revision C deleted a
// key, etcd keeps that deletion and a watch from C still reports it.
func scWatchCompactedAtDeletion(e *env) {
	e.put("a", "1")
	e.put("b", "1")
	at, err := e.Delete(&pb.DeleteRangeRequest{Key: e.k("a")})
	e.wantOK(err)
	_, err = e.Compact(&pb.CompactionRequest{Revision: at.Header.Revision})
	e.wantOK(err)
	e.put("b", "2")
	w := e.openWatch(false)
	w.create(e.k(""), wEnd(prefixEnd(e.k(""))), wRev(at.Header.Revision), wPrevKV)
	w.compare("watch from the compaction point", false)
	w.close()
}

func scWatchIDs(e *env) {
	w := e.openWatch(false)
	key := e.k("a")
	w.create(key, wID(5))
	w.create(key)         // auto: 0
	w.create(key, wID(0)) // 0 means auto: 1
	w.create(key, wID(5)) // duplicate
	w.create(key, wID(1)) // duplicate of an auto ID
	w.create(key, wID(2))
	w.create(key) // auto skips 2: 3
	w.create(key, wID(-7))
	w.create(key, wID(1<<40))
	e.wantCount(w.compare("creates", false), 9, "9 creates")
	e.put("a", "1")
	w.compare("event to every watcher", true)
	w.cancelWatch(5)
	w.compare("cancel", false)
	w.cancelWatch(5)
	w.cancelWatch(99)
	w.compare("cancel unknown IDs", false)
	w.cancelWatch(-7)
	w.compare("cancel a negative ID", false)
	w.create(key, wID(5))
	w.create(key) // 4
	w.compare("reuse a canceled ID", false)
	e.put("a", "2")
	w.compare("event", true)
	w.close()
}

func scWatchInvalid(e *env) {
	w := e.openWatch(false)
	w.create(e.k("b"), wEnd(e.k("b")))
	w.create(e.k("b"), wEnd(e.k("a")))
	w.create(e.k("b"), wRev(-1))
	w.create(e.k("b"), wEnd(e.k("a")), wRev(-1))
	w.create(e.k("b"), wEnd([]byte{0, 0}))
	w.create(nil, wEnd(fromKey))
	w.create(e.k("b")) // the first valid one gets ID 0... or not
	e.wantCount(w.compare("invalid creates", false), 7, "7 creates")
	w.send(&pb.WatchRequest{})
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{}})
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{}})
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{}})
	w.create(e.k("b"))
	w.compare("empty requests are ignored", false)
	w.close()
}

func scWatchProgress(e *env) {
	e.put("a", "1")
	w := e.openWatch(false)
	w.progress()
	w.compare("progress on an empty stream", false)
	w.close()
	w = e.openWatch(false)
	w.create(e.k("a"))
	w.create(e.k("b"), wRev(e.rev())) // from the past (the current revision)
	w.compare("creates", false)
	w.progress()
	w.progress()
	e.wantCount(w.compare("progress twice", false), 2, "two progress requests")
	// A watcher starting at the next revision holds progress back.
	w.create(e.k("c"), wRev(e.rev()+1))
	w.compare("create at the next revision", false)
	w.progress()
	w.compare("progress with a watcher at the next revision", false)
	e.put("c", "1")
	w.compare("event", false)
	w.progress()
	w.compare("progress once it is reached", false)
	w.create(e.k("d"), wRev(e.rev()+3))
	w.compare("create in the future", false)
	w.progress()
	w.compare("progress with a future watcher", false)
	for i := range 3 {
		e.put("d", fmt.Sprint(i))
	}
	w.compare("events", true)
	w.progress()
	w.compare("progress", false)
	w.cancelWatch(0)
	w.progress()
	w.compare("cancel and progress", false)
	w.close()
}

func scWatchFragment(e *env) {
	big := bytes.Repeat([]byte("v"), 100<<10)
	first := e.rev() + 1
	for i := range 24 {
		_, err := e.Put(&pb.PutRequest{Key: e.k(fmt.Sprintf("big/%02d", i)), Value: big})
		e.wantOK(err)
	}
	prefix := wEnd(prefixEnd(e.k("big/")))
	w := e.openWatch(false)
	w.create(e.k("big/"), prefix, wRev(first), wFragment)
	if resps := w.compare("fragmented catch-up", false); len(resps) < 3 || !resps[1].Fragment {
		e.t.Fatalf("test bug: etcd sent %d responses, want a fragmented catch-up", len(resps))
	}
	w.close()
	w = e.openWatch(false)
	w.create(e.k("big/"), prefix, wRev(first), wFragment, wPrevKV)
	w.compare("fragmented catch-up with prev_kv", false)
	w.close()
	w = e.openWatch(false)
	w.create(e.k("big/"), prefix, wRev(first))
	w.compare("the same without fragment", false)
	w.close()
	// Live: one revision of about 1 MiB is under the limit.
	w = e.openWatch(false)
	w.create(e.k("big/"), prefix, wFragment, wPrevKV)
	var ops []*pb.RequestOp
	for i := range 10 {
		ops = append(ops, putOp(&pb.PutRequest{Key: e.k(fmt.Sprintf("big/%02d", i)), Value: big}))
	}
	_, err := e.Txn(&pb.TxnRequest{Success: ops})
	e.wantOK(err)
	w.compare("live, fragment", false)
	w.close()
}

func scWatchLeaseRevoke(e *env) {
	const id = 0x7a7a
	_, err := e.Grant(&pb.LeaseGrantRequest{ID: id, TTL: 3600})
	e.wantOK(err)
	w := e.openWatch(false)
	w.create(e.k(""), wEnd(prefixEnd(e.k(""))), wPrevKV)
	w.create(e.k("k3"))
	w.compare("creates", false)
	for _, k := range []string{"k3", "k1", "k4", "k2"} {
		_, err := e.Put(&pb.PutRequest{Key: e.k(k), Value: []byte(k), Lease: id})
		e.wantOK(err)
	}
	e.put("other", "x")
	w.compare("puts with a lease", true)
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: id})
	e.wantOK(err)
	w.compare("revoke: one revision of deletions", true)
	w.close()
}

// scWatchK8s is what kube-apiserver does: a prefix watch from rv+1 with
// prev_kv under "require leader", CRUD through Txns, progress requests,
// compaction, and a re-watch from a compacted revision.
func scWatchK8s(e *env) {
	created, err := e.k8sCreate("pods/a", "v1", 0)
	e.wantOK(err)
	rv := created.Header.Revision
	w := e.openWatch(true)
	w.create(e.k("pods/"), wEnd(prefixEnd(e.k("pods/"))), wRev(rv+1), wPrevKV)
	w.compare("watch from rv+1", false)
	w.progress()
	w.compare("progress (held back: the watcher starts at the next revision)", false)
	c2, err := e.k8sCreate("pods/b", "v1", 0)
	e.wantOK(err)
	_, err = e.k8sUpdate("pods/a", "v2", rv)
	e.wantOK(err)
	_, err = e.k8sUpdate("pods/a", "v3", rv) // conflict: no revision
	e.wantOK(err)
	_, err = e.k8sDelete("pods/b", c2.Header.Revision)
	e.wantOK(err)
	w.compare("events", false)
	for range 3 {
		w.progress()
	}
	w.compare("progress requests", false)
	cur := e.rev()
	_, err = e.Compact(&pb.CompactionRequest{Revision: cur})
	e.wantOK(err)
	w2 := e.openWatch(true)
	w2.create(e.k("pods/"), wEnd(prefixEnd(e.k("pods/"))), wRev(rv+1), wPrevKV)
	w2.compare("re-watch from a compacted revision", false)
	w2.close()
	_, err = e.k8sCreate("pods/c", "v1", 0)
	e.wantOK(err)
	w.compare("event after compaction", false)
	w.close()
}

func scWatchCloseSend(e *env) {
	w := e.openWatch(false)
	w.create(e.k("a"))
	w.compare("create", false)
	for _, ws := range w.ws {
		if err := ws.CloseSend(); err != nil {
			e.t.Fatal(err)
		}
	}
	e.put("a", "1")
	w.compare("events after CloseSend", false)
	w.close()
}

func scWatchMany(e *env) {
	w := e.openWatch(false)
	key := func(i int) []byte { return e.k(fmt.Sprintf("k%d", i)) }
	n := 0
	for i := range 8 {
		for j := i + 1; j <= 8; j += 3 {
			opts := []watchOpt{wEnd(key(j))}
			if (i+j)%2 == 0 {
				opts = append(opts, wPrevKV)
			}
			if j == 7 {
				opts = append(opts, wFilters(pb.WatchCreateRequest_NODELETE))
			}
			w.create(key(i), opts...)
			n++
		}
		w.create(key(i))
		n++
	}
	e.wantCount(w.compare("creates", false), n, "creates")
	for i := range 8 {
		e.put(fmt.Sprintf("k%d", i), "1")
	}
	var ops []*pb.RequestOp
	for i := range 8 {
		if i%3 == 0 {
			ops = append(ops, delOp(&pb.DeleteRangeRequest{Key: key(i)}))
		} else {
			ops = append(ops, putOp(&pb.PutRequest{Key: key(i), Value: []byte("2")}))
		}
	}
	e.Txn(&pb.TxnRequest{Success: ops})
	e.Delete(&pb.DeleteRangeRequest{Key: key(2), RangeEnd: key(6)})
	w.compare("events", true)
	w.close()
}

// scWatchBatches: etcd sends a watcher from the past at most 1000
// revisions per response.
func scWatchBatches(e *env) {
	first := e.rev() + 1
	for i := range 1100 {
		e.put(fmt.Sprintf("k%d", i%7), fmt.Sprint(i))
	}
	w := e.openWatch(false)
	w.create(e.k(""), wEnd(prefixEnd(e.k(""))), wRev(first))
	if resps := w.compare("catch-up of 1100 revisions", false); len(resps) != 3 {
		e.t.Fatalf("test bug: etcd sent %d responses, want created and two batches", len(resps))
	}
	w.create(e.k("k3"), wRev(first))
	w.compare("catch-up of one key", false)
	w.close()
}

// scWatchProgressNotify compares the progress_notify responses sent at
// --watch-progress-notify-interval. Their timing has jitter, so only their
// content and that both send them are compared.
func scWatchProgressNotify(e *env) {
	e.put("a", "1")
	w := e.openWatch(false)
	w.create(e.k("a"), wNotify)
	w.create(e.k("b"))
	w.compare("creates", false)
	var got [2][]watchMsg
	var wg sync.WaitGroup
	for i := range w.ch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = drain(w.ch[i], 3*watchNotifyInterval, -1, 3*watchNotifyInterval)
		}()
	}
	wg.Wait()
	if len(got[0]) == 0 {
		e.t.Fatalf("test bug: etcd sent no progress notification in %v", 3*watchNotifyInterval)
	}
	// Every notification of both is the same response; how many arrived
	// in the window depends on the jitter.
	for i := range got[1] {
		if !w.sameMsg(got[0][0], got[1][i]) {
			e.t.Errorf("MISMATCH progress notification %d:\n%s", i, w.diff(got[0][:1], got[1][i:i+1]))
		}
	}
	for i := 1; i < len(got[0]); i++ {
		a, b := got[0][0].resp, got[0][i].resp
		if a.WatchId != b.WatchId || a.Header.Revision != b.Header.Revision || len(a.Events) != 0 || len(b.Events) != 0 {
			e.t.Fatalf("test bug: etcd's notifications differ: %v, %v", a, b)
		}
	}
	if len(got[1]) == 0 {
		e.t.Errorf("MISMATCH: etcd sent %d progress notifications in %v, sett none", len(got[0]), 3*watchNotifyInterval)
	}
	e.t.Logf("progress notifications in %v: etcd %d, sett %d", 3*watchNotifyInterval, len(got[0]), len(got[1]))
	w.close()
}
