package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// frame is the unit the peer service moves: bytes this package encodes
// itself, passed through gRPC untouched by the codec.
type frame struct{ b []byte }

// codec passes frames as raw bytes. Any other value (a service someone else
// registered on the same server) goes to gRPC's proto codec, so forcing
// this codec on a shared server breaks nobody.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
	}
	return protoCodec().Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.b = data.Materialize() // a copy: gRPC frees data after we return
		return nil
	}
	return protoCodec().Unmarshal(data, v)
}

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// Frame kinds. Every frame starts with a header: kind, then the sender,
// the recipient and the cluster ID as uvarints.
const (
	kindMessages      byte = 1 // body: repeated (uvarint length, raftpb.Message)
	kindSnapshotHead  byte = 2 // body: the MsgSnap raftpb.Message
	kindSnapshotChunk byte = 3 // body: snapshot data
	kindCall          byte = 4 // body: uvarint method length, method, request
	kindReply         byte = 5 // body: the reply (Call result, snapshot ack)
)

type header struct {
	kind    byte
	from    uint64
	to      uint64
	cluster uint64
}

const maxHeaderLen = 1 + 3*binary.MaxVarintLen64

func (h header) appendTo(b []byte) []byte {
	b = append(b, h.kind)
	b = binary.AppendUvarint(b, h.from)
	b = binary.AppendUvarint(b, h.to)
	return binary.AppendUvarint(b, h.cluster)
}

var errShortFrame = errors.New("truncated frame")

// parseHeader splits a frame into its header and body.
func parseHeader(b []byte) (header, []byte, error) {
	if len(b) == 0 {
		return header{}, nil, errShortFrame
	}
	h := header{kind: b[0]}
	b = b[1:]
	for _, dst := range []*uint64{&h.from, &h.to, &h.cluster} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return header{}, nil, errShortFrame
		}
		*dst = v
		b = b[n:]
	}
	return h, b, nil
}

// encodeMessages returns one frame holding msgs in order; sizes[i] is
// msgs[i].Size().
func encodeMessages(h header, msgs []raftpb.Message, sizes []int) ([]byte, error) {
	n := maxHeaderLen
	for _, s := range sizes {
		n += uvarintLen(uint64(s)) + s
	}
	b := h.appendTo(make([]byte, 0, n))
	for i := range msgs {
		s := sizes[i]
		b = binary.AppendUvarint(b, uint64(s))
		if _, err := msgs[i].MarshalToSizedBuffer(b[len(b) : len(b)+s]); err != nil {
			return nil, err
		}
		b = b[:len(b)+s]
	}
	return b, nil
}

// nextMessage decodes the first message of a kindMessages body and returns
// the rest of the body.
func nextMessage(body []byte, m *raftpb.Message) ([]byte, error) {
	s, n := binary.Uvarint(body)
	if n <= 0 || uint64(len(body)-n) < s {
		return nil, errShortFrame
	}
	*m = raftpb.Message{}
	if err := m.Unmarshal(body[n : n+int(s)]); err != nil {
		return nil, fmt.Errorf("decode raft message: %w", err)
	}
	return body[n+int(s):], nil
}

func encodeCall(h header, method string, req []byte) []byte {
	b := h.appendTo(make([]byte, 0, maxHeaderLen+binary.MaxVarintLen64+len(method)+len(req)))
	b = binary.AppendUvarint(b, uint64(len(method)))
	b = append(b, method...)
	return append(b, req...)
}

func decodeCall(body []byte) (method string, req []byte, err error) {
	s, n := binary.Uvarint(body)
	if n <= 0 || uint64(len(body)-n) < s {
		return "", nil, errShortFrame
	}
	return string(body[n : n+int(s)]), body[n+int(s):], nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
