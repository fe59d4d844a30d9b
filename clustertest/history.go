package clustertest

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// NumKeys is the number of keys the workload and the model know:
// "<prefix>k0" … "<prefix>k<NumKeys-1>".
const NumKeys = 4

// OpKind is a kind of client operation.
type OpKind uint8

const (
	OpGet OpKind = iota // linearizable Range of one key
	OpPut
	OpDelete
	// OpCAS is Txn(If mod_revision(Key) == ExpectModRev, Then Put(Key,
	// Value), Else Range(Key)).
	OpCAS
	// OpPutPair is Txn(Then Put(Key, Value), Put(Key2, Value2)): two
	// events in one revision.
	OpPutPair
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCAS:
		return "cas"
	case OpPutPair:
		return "put-pair"
	}
	return fmt.Sprintf("op%d", uint8(k))
}

// Input is an operation as sent.
type Input struct {
	Kind         OpKind
	Key, Key2    int // indexes below NumKeys
	Value        string
	Value2       string
	ExpectModRev int64
}

// Output is an operation's outcome.
type Output struct {
	// Unknown: the client got an error (timeout, unavailable, leader
	// changed…), so the operation may or may not have taken effect. Its
	// other fields are meaningless.
	Unknown bool
	Rev     int64 // response header revision
	// Get, and the Else branch of a failed CAS: the key as read.
	Exists bool
	Value  string
	ModRev int64
	// CAS: whether the comparison held.
	Succeeded bool
	// Delete: keys deleted (0 or 1).
	Deleted int64
}

// History records client operations from many goroutines.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

// NewHistory starts a history; times are measured from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Call notes the start of an operation and returns its call time.
func (h *History) Call() int64 { return time.Since(h.start).Nanoseconds() }

// Record adds an operation issued by client at time call. An operation
// with an unknown outcome is recorded as never returning: it may take
// effect at any point after its call. A read with an unknown outcome has no
// effect on anything and is dropped.
func (h *History) Record(client int, in Input, call int64, out Output) {
	ret := time.Since(h.start).Nanoseconds()
	if out.Unknown {
		if in.Kind == OpGet {
			return
		}
		ret = math.MaxInt64
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// Operations returns a copy of the recorded operations.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Ack is an acknowledged write: its effect must be in the cluster's history
// at revision Rev.
type Ack struct {
	Rev    int64
	Key    int
	Value  string // "" for a delete
	Delete bool
}

// AcknowledgedWrites lists the effects of the writes whose success the
// cluster acknowledged.
func AcknowledgedWrites(ops []porcupine.Operation) []Ack {
	var acks []Ack
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if out.Unknown {
			continue
		}
		switch in.Kind {
		case OpPut:
			acks = append(acks, Ack{Rev: out.Rev, Key: in.Key, Value: in.Value})
		case OpPutPair:
			acks = append(acks, Ack{Rev: out.Rev, Key: in.Key, Value: in.Value}, Ack{Rev: out.Rev, Key: in.Key2, Value: in.Value2})
		case OpCAS:
			if out.Succeeded {
				acks = append(acks, Ack{Rev: out.Rev, Key: in.Key, Value: in.Value})
			}
		case OpDelete:
			if out.Deleted > 0 {
				acks = append(acks, Ack{Rev: out.Rev, Key: in.Key, Delete: true})
			}
		}
	}
	return acks
}

// Counts summarises a history: operations by outcome.
type Counts struct{ Total, OK, Unknown, Reads, Writes int }

func (c Counts) String() string {
	return fmt.Sprintf("%d operations (%d reads, %d writes; %d ok, %d unknown outcome)", c.Total, c.Reads, c.Writes, c.OK, c.Unknown)
}

// CountOperations summarises ops.
func CountOperations(ops []porcupine.Operation) Counts {
	var c Counts
	for _, op := range ops {
		c.Total++
		if op.Input.(Input).Kind == OpGet {
			c.Reads++
		} else {
			c.Writes++
		}
		if op.Output.(Output).Unknown {
			c.Unknown++
		} else {
			c.OK++
		}
	}
	return c
}

// Resolve uses the cluster's complete revision history to settle the
// operations whose outcome the client did not learn: a write of a unique
// value that is in the history took effect at that revision (it is kept,
// never returning, with that outcome); one that is not never took effect
// and is dropped, as are unknown deletes of a key whose every delete the
// history shows is explained by an acknowledged delete. The rest stay
// unknown. Without this, an unknown write that may be a no-op (a CAS whose
// comparison fails, a delete of an absent key) doubles porcupine's search
// from its call on.
//
// It is sound because the history is checked on its own (against every
// member's watch, and every acknowledged write must be in it): a history
// that invents or misplaces a write contradicts the reads porcupine checks.
func Resolve(ops []porcupine.Operation, ref *RevHistory, w *Workload) ([]porcupine.Operation, ResolveCounts) {
	var n ResolveCounts
	type kv struct{ key, value string }
	putAt := map[kv]int64{}
	deletesOf := map[string]int{} // delete events per key not explained by an acknowledged delete
	for _, ev := range ref.Events {
		if ev.Delete {
			deletesOf[ev.Key]++
		} else {
			putAt[kv{ev.Key, ev.Value}] = ev.Rev
		}
	}
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if in.Kind == OpDelete && !out.Unknown && out.Deleted > 0 {
			deletesOf[w.Key(in.Key)]--
		}
	}
	var resolved []porcupine.Operation
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if !out.Unknown {
			resolved = append(resolved, op)
			continue
		}
		switch in.Kind {
		case OpPut, OpCAS, OpPutPair:
			rev, ok := putAt[kv{w.Key(in.Key), in.Value}]
			if !ok {
				n.NoEffect++
				continue
			}
			n.Applied++
			op.Output = Output{Rev: rev, Succeeded: in.Kind == OpCAS}
		case OpDelete:
			if deletesOf[w.Key(in.Key)] <= 0 {
				n.NoEffect++
				continue // every delete of the key is explained
			}
			n.Undecided++
		}
		resolved = append(resolved, op)
	}
	return resolved, n
}

// ResolveCounts says what Resolve made of the writes with unknown outcome.
type ResolveCounts struct{ Applied, NoEffect, Undecided int }
