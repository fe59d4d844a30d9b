package etcdapi

import (
	"sync/atomic"
	"time"
)

// idGenerator makes etcd-style request and lease IDs: the member ID's low
// 16 bits, then 40 bits of the start time in milliseconds, then an 8-bit
// counter that carries into the time bits. IDs are unique per member and
// across restarts, and encode to the same length as etcd's.
type idGenerator struct {
	prefix uint64
	suffix atomic.Uint64
}

const (
	idTimeBits   = 5 * 8
	idCountBits  = 8
	idSuffixBits = idTimeBits + idCountBits
)

func newIDGenerator(member uint64) *idGenerator {
	g := &idGenerator{prefix: uint64(uint16(member)) << idSuffixBits}
	ms := uint64(time.Now().UnixMilli()) & (1<<idTimeBits - 1)
	g.suffix.Store(ms << idCountBits)
	return g
}

func (g *idGenerator) next() uint64 {
	return g.prefix | (g.suffix.Add(1) & (1<<idSuffixBits - 1))
}
