package transport

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func TestFrameEncoding(t *testing.T) {
	h := header{kind: kindMessages, from: 1 << 60, to: 7, cluster: 0xdeadbeef}
	msgs := []raftpb.Message{app(1, 7, 3, []byte("x")), heartbeat(1, 7, 9), {Type: raftpb.MsgVote, From: 1, To: 7, Term: 4}}
	sizes := []int{msgs[0].Size(), msgs[1].Size(), msgs[2].Size()}
	b, err := encodeMessages(h, msgs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	got, body, err := parseHeader(b)
	if err != nil || got != h {
		t.Fatalf("header %+v, %v; want %+v", got, err, h)
	}
	for i := range msgs {
		var m raftpb.Message
		if body, err = nextMessage(body, &m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type != msgs[i].Type || m.Index != msgs[i].Index || m.Commit != msgs[i].Commit || len(m.Entries) != len(msgs[i].Entries) {
			t.Fatalf("message %d = %+v, want %+v", i, m, msgs[i])
		}
	}
	if len(body) != 0 {
		t.Fatalf("%d bytes left after the last message", len(body))
	}

	call := encodeCall(header{kind: kindCall, from: 1, to: 2, cluster: 3}, "lease/keepalive", []byte("req"))
	_, body, _ = parseHeader(call)
	if method, req, err := decodeCall(body); err != nil || method != "lease/keepalive" || string(req) != "req" {
		t.Fatalf("call decoded as %q %q %v", method, req, err)
	}
}

func TestTruncatedFramesRejected(t *testing.T) {
	m := app(1, 2, 1, []byte("payload"))
	b, err := encodeMessages(header{kind: kindMessages, from: 300, to: 2, cluster: 3}, []raftpb.Message{m}, []int{m.Size()})
	if err != nil {
		t.Fatal(err)
	}
	hdrLen := len(header{kind: kindMessages, from: 300, to: 2, cluster: 3}.appendTo(nil))
	for cut := range len(b) {
		_, body, err := parseHeader(b[:cut])
		if cut < hdrLen {
			if err == nil {
				t.Errorf("header cut at %d accepted", cut)
			}
			continue
		}
		if len(body) == 0 {
			continue // an empty body is an empty batch
		}
		var m raftpb.Message
		if _, err := nextMessage(body, &m); err == nil {
			t.Errorf("message cut at %d accepted", cut)
		}
	}
	if _, _, err := decodeCall([]byte{10, 'a'}); err == nil {
		t.Error("truncated method name accepted")
	}
}
