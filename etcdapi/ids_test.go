package etcdapi

import (
	"testing"
	"time"
)

func TestIDLayoutMatchesEtcd(t *testing.T) {
	before := uint64(time.Now().UnixMilli())
	g := newIDGenerator(0x3b88c6e11f42a15d)
	id := g.next()
	if id>>48 != 0xa15d {
		t.Fatalf("prefix %x, want member's low 16 bits a15d", id>>48)
	}
	if ms := (id >> 8) & (1<<40 - 1); ms < before&(1<<40-1) || ms > before&(1<<40-1)+5000 {
		t.Fatalf("time bits %d, want about %d", ms, before&(1<<40-1))
	}
	if id&0xff != 1 {
		t.Fatalf("counter %d, want 1", id&0xff)
	}
	if next := g.next(); next != id+1 {
		t.Fatalf("next id %x, want %x", next, id+1)
	}
}
