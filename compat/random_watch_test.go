package compat

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Watches in random sequences.
//
// Each stream's answers are compared at the end of the sequence, per watch
// ID, as flat sequences of items: the created response (whole, header
// revision included: the sequence waits for it before going on, so the
// revision a watcher starts from is fixed), every event in order, and the
// cancel response last. How events are cut into responses, and the header
// revision of event responses, depend on when each server's catch-up loop
// ran and are not compared.

// maxRandStreams bounds the streams one sequence opens; further watchers
// share them.
const maxRandStreams = 4

// settleQuiet is how long every stream must stay silent for watchers from
// the past to have caught up (etcd's catch-up loop runs every 100 ms).
const settleQuiet = 400 * time.Millisecond

// randStream is one stream on each server and everything each sent.
type randStream struct {
	w       *wstream
	got     [2][]watchMsg
	creates []string // "op N: {request}", for reports
	ids     []int64  // watchers etcd created and the sequence has not canceled
}

func (g *randGen) watchRev() int64 {
	cur := g.e.rev()
	switch k := g.r.IntN(20); {
	case k < 6:
		return 0 // from the next revision
	case k < 8:
		return cur + 1
	case k < 9:
		return cur + 2 + int64(g.r.IntN(5))
	case k < 14:
		return max(cur-int64(g.r.IntN(10)), 1)
	case k < 16:
		return max(cur-int64(g.r.IntN(60)), 1)
	case k < 18:
		if g.compactRev > 0 {
			return g.compactRev + int64(g.r.IntN(3)) - 1
		}
		return 1
	case k < 19:
		return 1
	}
	return -1 - int64(g.r.IntN(3))
}

func (g *randGen) watchReq() *pb.WatchCreateRequest {
	key := g.key()
	c := &pb.WatchCreateRequest{Key: key}
	switch g.r.IntN(6) {
	case 0:
		c.Key, c.RangeEnd = g.e.k(""), prefixEnd(g.e.k(""))
	case 1, 2:
		c.RangeEnd = g.rangeEnd(key) // may be before key: refused
	}
	c.StartRevision = g.watchRev()
	if g.r.IntN(4) == 0 {
		c.Filters = append(c.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if g.r.IntN(4) == 0 {
		c.Filters = append(c.Filters, pb.WatchCreateRequest_NODELETE)
	}
	c.PrevKv = g.r.IntN(2) == 0
	if g.r.IntN(5) == 0 {
		c.WatchId = int64(1000 + g.op) // unused on its stream
	}
	return c
}

// watchCreate adds a watcher to a new or an existing stream and waits for
// both servers to confirm it.
func (g *randGen) watchCreate() {
	var s *randStream
	if len(g.streams) < maxRandStreams && (len(g.streams) == 0 || g.r.IntN(2) == 0) {
		s = &randStream{w: g.e.openWatch(g.r.IntN(4) == 0)}
		g.streams = append(g.streams, s)
	} else {
		s = g.streams[g.r.IntN(len(g.streams))]
	}
	c := g.watchReq()
	if c.StartRevision != 0 && c.StartRevision <= g.e.rev() {
		g.unsettled = true
	}
	g.e.step++
	g.e.stats["Watch create"]++
	s.creates = append(s.creates, fmt.Sprintf("op %d: %s", g.op, describe(c)))
	s.w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}})
	var created [2]*pb.WatchResponse
	for i := range s.got {
		created[i] = s.waitCreated(i)
	}
	switch {
	case created[0] == nil:
		g.e.t.Fatalf("test bug (%s): etcd did not answer watch create %s", g.e.ctx, describe(c))
	case created[1] == nil:
		g.e.fails++
		g.e.t.Errorf("MISMATCH (%s, step %d) watch create %s: etcd answered, sett did not within 10s:\n%s",
			g.e.ctx, g.e.step, describe(c), indent(text(created[0])))
	}
	if !created[0].Canceled {
		s.ids = append(s.ids, created[0].WatchId)
	}
}

// waitCreated collects side i's messages until its next created response
// (or an error), which it returns; nil if none came.
func (s *randStream) waitCreated(i int) *pb.WatchResponse {
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.w.ch[i]:
			s.got[i] = append(s.got[i], m)
			if m.err != nil {
				return nil
			}
			if m.resp.Created {
				return m.resp
			}
		case <-deadline:
			return nil
		}
	}
}

// watchCancel cancels a watcher (or an ID the stream does not have).
// Events already on their way when the cancel arrives may or may not be
// sent (etcd drops what it has not sent yet), so the streams settle before
// and after.
func (g *randGen) watchCancel() {
	if len(g.streams) == 0 {
		g.e.Range(g.rangeReq())
		return
	}
	s := g.streams[g.r.IntN(len(g.streams))]
	id := int64(999) // not a watcher of the stream
	if len(s.ids) > 0 && g.r.IntN(5) != 0 {
		i := g.r.IntN(len(s.ids))
		id = s.ids[i]
		s.ids = append(s.ids[:i:i], s.ids[i+1:]...)
	}
	g.e.step++
	g.e.stats["Watch cancel"]++
	g.settle()
	s.creates = append(s.creates, fmt.Sprintf("op %d: cancel %d", g.op, id))
	s.w.cancelWatch(id)
	g.settle()
}

// settle collects what the streams send until all have been quiet for
// settleQuiet.
func (g *randGen) settle() {
	g.unsettled = false
	if len(g.streams) == 0 {
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	last := time.Now()
	for time.Since(last) < settleQuiet && time.Now().Before(deadline) {
		time.Sleep(25 * time.Millisecond)
		for _, s := range g.streams {
			for i := range s.got {
				for more := true; more; {
					select {
					case m := <-s.w.ch[i]:
						s.got[i] = append(s.got[i], m)
						last = time.Now()
					default:
						more = false
					}
				}
			}
		}
	}
}

// compareWatches compares every stream of the sequence, per watch ID.
func (g *randGen) compareWatches() {
	g.settle()
	e := g.e
	for n, s := range g.streams {
		e.step++
		eg, sg := flattenWatch(s.got[0]), flattenWatch(s.got[1])
		var keys []string
		for k := range eg {
			keys = append(keys, k)
		}
		for k := range sg {
			if _, ok := eg[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := diffItems(eg[k], sg[k]); d != "" {
				e.fails++
				e.t.Errorf("MISMATCH (seed %d, watch stream %d, %s) after these requests on the stream:\n  %s\n%s",
					g.seed, n, k, strings.Join(s.creates, "\n  "), d)
			}
		}
		e.stats["Watch items"] += countItems(eg)
	}
}

func countItems(g map[string][]string) int {
	n := 0
	for _, items := range g {
		n += len(items)
	}
	return n
}

// flattenWatch turns one side's messages into items per watch ID (see the
// comment at the top of this file).
func flattenWatch(ms []watchMsg) map[string][]string {
	items := map[string][]string{}
	last := map[string][]string{} // cancel responses, appended at the end
	for _, m := range ms {
		if m.err != nil {
			st := status.Convert(m.err)
			items["stream"] = append(items["stream"], fmt.Sprintf("stream error code=%s msg=%q", st.Code(), st.Message()))
			continue
		}
		r := *m.resp
		id := fmt.Sprintf("watch_id %d", r.WatchId)
		if r.Created {
			if r.Header != nil {
				h := *r.Header
				h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
				r.Header = &h
			}
			items[id] = append(items[id], "created "+oneLine(text(&r)))
			continue
		}
		for _, ev := range r.Events {
			items[id] = append(items[id], "event "+oneLine(text(ev)))
		}
		r.Header, r.Events = nil, nil
		switch {
		case r.Canceled:
			last[id] = append(last[id], "canceled "+oneLine(text(&r)))
		case len(m.resp.Events) == 0:
			items[id] = append(items[id], "response without events "+oneLine(text(&r)))
		}
	}
	for id, l := range last {
		items[id] = append(items[id], l...)
	}
	return items
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// diffItems reports two item sequences around their first difference.
func diffItems(es, ss []string) string {
	i := 0
	for i < len(es) && i < len(ss) && es[i] == ss[i] {
		i++
	}
	if i == len(es) && i == len(ss) {
		return ""
	}
	show := func(items []string) string {
		var b strings.Builder
		lo := max(i-3, 0)
		if lo > 0 {
			fmt.Fprintf(&b, "    … %d equal items\n", lo)
		}
		for j := lo; j < len(items) && j < i+4; j++ {
			fmt.Fprintf(&b, "    [%d] %s\n", j, items[j])
		}
		if i+4 < len(items) {
			fmt.Fprintf(&b, "    … %d more\n", len(items)-i-4)
		}
		if len(items) <= i {
			fmt.Fprintf(&b, "    <nothing from item %d on>\n", i)
		}
		return b.String()
	}
	return fmt.Sprintf("  first difference at item %d\n  etcd (%d items):\n%s  sett (%d items):\n%s", i, len(es), show(es), len(ss), show(ss))
}

// TestFlattenWatch checks the stream comparison on made-up streams: how
// events are cut into responses, event response headers and where the
// cancel response falls do not matter; anything else does.
func TestFlattenWatch(t *testing.T) {
	ev := func(key string, rev int64, prev bool) *mvccpb.Event {
		e := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
		if prev {
			e.PrevKv = &mvccpb.KeyValue{Key: []byte(key)}
		}
		return e
	}
	created := func(rev int64, member uint64) watchMsg {
		return watchMsg{resp: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev, MemberId: member}, Created: true}}
	}
	events := func(hdr int64, evs ...*mvccpb.Event) watchMsg {
		return watchMsg{resp: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: hdr}, Events: evs}}
	}
	canceled := watchMsg{resp: &pb.WatchResponse{Canceled: true, CompactRevision: 7}}
	base := []watchMsg{created(5, 1), events(7, ev("a", 6, false), ev("b", 7, false)), canceled}
	same := [][]watchMsg{
		{created(5, 2), events(6, ev("a", 6, false)), events(9, ev("b", 7, false)), canceled},
		{created(5, 1), canceled, events(7, ev("a", 6, false), ev("b", 7, false))},
	}
	differ := [][]watchMsg{
		{created(4, 1), events(7, ev("a", 6, false), ev("b", 7, false)), canceled},
		{created(5, 1), events(7, ev("a", 6, false)), canceled},
		{created(5, 1), events(7, ev("b", 7, false), ev("a", 6, false)), canceled},
		{created(5, 1), events(7, ev("a", 6, true), ev("b", 7, false)), canceled},
		{created(5, 1), events(7, ev("a", 6, false), ev("b", 7, false))},
		{created(5, 1), events(7, ev("a", 6, false), ev("b", 7, false)), canceled, {err: status.Error(codes.Unavailable, "x")}},
	}
	want := flattenWatch(base)
	for i, ms := range same {
		for id, items := range flattenWatch(ms) {
			if d := diffItems(want[id], items); d != "" {
				t.Errorf("same case %d, %s: reported different:\n%s", i, id, d)
			}
		}
	}
	for i, ms := range differ {
		got := flattenWatch(ms)
		diff := len(got) != len(want)
		for id := range want {
			diff = diff || diffItems(want[id], got[id]) != ""
		}
		if !diff {
			t.Errorf("differ case %d: reported equal", i)
		}
	}
}
