package etcdapi

import (
	"sync/atomic"
	"time"
)

// idGenerator makes etcd-style unique IDs: the member's low 16 bits, then a
// counter seeded from the clock, so IDs differ across members and restarts.
type idGenerator struct {
	prefix uint64
	suffix atomic.Uint64
}

const (
	idTSBits     = 5 * 8
	idCountBits  = 2 * 8
	idSuffixBits = idTSBits + idCountBits
)

func newIDGenerator(member uint64) *idGenerator {
	g := &idGenerator{prefix: member << idSuffixBits}
	ms := uint64(time.Now().UnixNano()/int64(time.Millisecond)) & (1<<idTSBits - 1)
	g.suffix.Store(ms << idCountBits)
	return g
}

func (g *idGenerator) next() uint64 {
	return g.prefix | (g.suffix.Add(1) & (1<<idSuffixBits - 1))
}
