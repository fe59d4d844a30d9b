package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// revWriter executes one command that may write: all its changes share
// revision begin+1, numbered by sub-revision in the order they happen.
// With readOnly set it only evaluates (read-only Txns on a snapshot).
type revWriter struct {
	v        view
	begin    int64 // the revision before this command
	compact  int64
	readOnly bool
	leases   leaseView
	// spill commits the writes so far and moves v to a fresh transaction
	// when one revision outgrows a Badger transaction; it refuses outside
	// a chunked batch.
	spill func() (*badger.Txn, error)
	// valueLog is set when a value of at least valueThreshold is written.
	valueThreshold int64
	valueLog       *bool

	events []*mvccpb.Event
}

func (w *revWriter) rev() int64 { return w.begin + 1 }

// cur is the newest revision visible to this command's own reads.
func (w *revWriter) cur() int64 {
	if len(w.events) > 0 {
		return w.begin + 1
	}
	return w.begin
}

// committedRev is the header revision of the command's response.
func (w *revWriter) committedRev() int64 { return w.cur() }

func (w *revWriter) set(key, value []byte) error {
	if w.valueLog != nil && int64(len(value)) >= w.valueThreshold {
		*w.valueLog = true
	}
	return w.write(func(txn *badger.Txn) error { return txn.SetEntry(badger.NewEntry(key, value)) })
}

func (w *revWriter) del(key []byte) error {
	return w.write(func(txn *badger.Txn) error { return txn.Delete(key) })
}

func (w *revWriter) write(op func(*badger.Txn) error) error {
	err := op(w.v.txn)
	if errors.Is(err, badger.ErrTxnTooBig) && w.spill != nil {
		var txn *badger.Txn
		if txn, err = w.spill(); err == nil {
			w.v.txn = txn
			err = op(txn)
		}
	}
	return err
}

func (w *revWriter) put(ctx context.Context, p *pb.PutRequest) (*pb.PutResponse, error) {
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	if len(p.Key) > MaxKeyBytes {
		return nil, ErrTooLarge
	}
	prev, err := w.v.liveCurrent(p.Key)
	if err != nil {
		return nil, err
	}
	value, lease := p.Value, p.Lease
	if p.IgnoreValue || p.IgnoreLease {
		if prev == nil {
			return nil, ErrKeyNotFound
		}
	}
	if p.IgnoreValue {
		value = prev.value
	}
	if p.IgnoreLease {
		lease = prev.lease
	}
	if p.PrevKv && prev != nil {
		resp.PrevKv = prev.keyValue(p.Key)
	}

	rec := record{create: w.rev(), mod: w.rev(), version: 1, lease: lease, value: value}
	if prev != nil {
		rec.create = prev.create
		rec.version = prev.version + 1
	}
	if err := w.change(p.Key, &rec); err != nil {
		return nil, err
	}
	if prev != nil && prev.lease != 0 && prev.lease != lease {
		if err := w.del(attachedKey(prev.lease, p.Key)); err != nil {
			return nil, err
		}
	}
	if lease != 0 && (prev == nil || prev.lease != lease) {
		if err := w.set(attachedKey(lease, p.Key), nil); err != nil {
			return nil, err
		}
	}
	ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: rec.keyValue(p.Key)}
	if prev != nil {
		ev.PrevKv = prev.keyValue(p.Key)
	}
	w.events = append(w.events, ev)
	resp.Header.Revision = w.rev()
	return resp, nil
}

// change writes rec as key's newest record in all three trees.
func (w *revWriter) change(key []byte, rec *record) error {
	sub := int64(len(w.events))
	cur := currentEntry(key, rec)
	if w.valueLog != nil && int64(len(cur.Value)) >= w.valueThreshold {
		*w.valueLog = true
	}
	if err := w.write(func(txn *badger.Txn) error { return txn.SetEntry(cur) }); err != nil {
		return err
	}
	if err := w.set(revisionKey(w.rev(), sub), encodeEvent(key, rec)); err != nil {
		return err
	}
	return w.set(historyKey(key, w.rev()), encodeInt(sub))
}

func (w *revWriter) deleteRange(ctx context.Context, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	type victim struct {
		key []byte
		rec record
	}
	var victims []victim
	err := w.v.scan(d.Key, gteRange(d.RangeEnd), w.cur(), func(key []byte, r *record) bool {
		rc := *r
		rc.value = bytes.Clone(r.value)
		victims = append(victims, victim{bytes.Clone(key), rc})
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, vi := range victims {
		if d.PrevKv {
			resp.PrevKvs = append(resp.PrevKvs, vi.rec.keyValue(vi.key))
		}
		tomb := record{deleted: true, mod: w.rev()}
		if err := w.change(vi.key, &tomb); err != nil {
			return nil, err
		}
		if vi.rec.lease != 0 {
			if err := w.del(attachedKey(vi.rec.lease, vi.key)); err != nil {
				return nil, err
			}
		}
		w.events = append(w.events, &mvccpb.Event{
			Type:   mvccpb.DELETE,
			Kv:     &mvccpb.KeyValue{Key: vi.key, ModRevision: w.rev()},
			PrevKv: vi.rec.keyValue(vi.key),
		})
	}
	resp.Deleted = int64(len(victims))
	if d.PrevKv && resp.PrevKvs == nil {
		resp.PrevKvs = []*mvccpb.KeyValue{}
	}
	resp.Header.Revision = w.cur()
	return resp, nil
}

func (w *revWriter) rangeOp(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return rangeAt(ctx, w.v, r, w.cur(), w.compact)
}

// txn evaluates the compares, checks the chosen branch, then executes it.
func (w *revWriter) txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	path, err := w.comparePath(r)
	if err != nil {
		return nil, err
	}
	if _, err := w.checkTxn(r, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(r, path)
	if _, err := w.execTxn(ctx, r, path, resp); err != nil {
		// Checks passed, so only storage failures get here.
		return nil, err
	}
	resp.Header.Revision = w.committedRev()
	return resp, nil
}

// comparePath is the branch each (nested) Txn takes, in execution order,
// decided on the state before the Txn runs.
func (w *revWriter) comparePath(r *pb.TxnRequest) ([]bool, error) {
	ok, err := w.compares(r.Compare)
	if err != nil {
		return nil, err
	}
	path := []bool{ok}
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	for _, op := range ops {
		if t := op.GetRequestTxn(); t != nil {
			sub, err := w.comparePath(t)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func (w *revWriter) compares(cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		ok, err := w.compare(c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// compare holds when it holds for every key in its range; a missing key
// compares as a zero KeyValue, except that VALUE never holds for it.
func (w *revWriter) compare(c *pb.Compare) (bool, error) {
	var kvs []record
	err := w.v.scan(c.Key, gteRange(c.RangeEnd), w.cur(), func(_ []byte, r *record) bool {
		rc := *r
		rc.value = bytes.Clone(r.value)
		kvs = append(kvs, rc)
		return true
	})
	if err != nil {
		return false, err
	}
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareRecord(c, &record{}), nil
	}
	for i := range kvs {
		if !compareRecord(c, &kvs[i]) {
			return false, nil
		}
	}
	return true, nil
}

func compareRecord(c *pb.Compare, r *record) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(r.value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmpInt(r.create, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt(r.mod, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt(r.version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt(r.lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkTxn rejects, before anything is written, a chosen branch that would
// fail: a Range at a compacted or future revision, a Put that ignores the
// value or lease of a missing key, a Put with an unknown lease.
func (w *revWriter) checkTxn(r *pb.TxnRequest, path []bool) (int, error) {
	n := 0
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	for _, op := range ops {
		switch t := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr := t.RequestRange
			switch {
			case rr.Revision == 0:
			case rr.Revision > w.cur():
				return 0, ErrFutureRev
			case rr.Revision < w.compact:
				return 0, ErrCompacted
			}
		case *pb.RequestOp_RequestPut:
			if err := w.checkPut(t.RequestPut); err != nil {
				return 0, err
			}
		case *pb.RequestOp_RequestTxn:
			sub, err := w.checkTxn(t.RequestTxn, path[1:])
			if err != nil {
				return 0, err
			}
			n += sub + 1
			path = path[sub+1:]
		}
	}
	return n, nil
}

func (w *revWriter) checkPut(p *pb.PutRequest) error {
	if p.IgnoreValue || p.IgnoreLease {
		prev, err := w.v.liveCurrent(p.Key)
		if err != nil {
			return err
		}
		if prev == nil {
			return ErrKeyNotFound
		}
	}
	if p.Lease != 0 && !w.leases.exists(p.Lease) {
		return ErrLeaseNotFound
	}
	return nil
}

// newTxnResp shapes the response: one empty ResponseOp per op of the chosen
// branch; it returns how many nested Txns the branch holds.
func newTxnResp(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: path[0], Responses: make([]*pb.ResponseOp, len(ops))}
	n := 0
	for i, op := range ops {
		switch t := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case *pb.RequestOp_RequestPut:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case *pb.RequestOp_RequestDeleteRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case *pb.RequestOp_RequestTxn:
			sub, subN := newTxnResp(t.RequestTxn, path[1:])
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+subN:]
			n += subN + 1
		}
	}
	return resp, n
}

func (w *revWriter) execTxn(ctx context.Context, r *pb.TxnRequest, path []bool, resp *pb.TxnResponse) (int, error) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	n := 0
	for i, op := range ops {
		out := resp.Responses[i].Response
		switch t := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := w.rangeOp(ctx, t.RequestRange)
			if err != nil {
				return 0, fmt.Errorf("txn range: %w", err)
			}
			out.(*pb.ResponseOp_ResponseRange).ResponseRange = rr
		case *pb.RequestOp_RequestPut:
			if w.readOnly {
				return 0, fmt.Errorf("txn put in a read-only txn")
			}
			pr, err := w.put(ctx, t.RequestPut)
			if err != nil {
				return 0, fmt.Errorf("txn put: %w", err)
			}
			out.(*pb.ResponseOp_ResponsePut).ResponsePut = pr
		case *pb.RequestOp_RequestDeleteRange:
			if w.readOnly {
				return 0, fmt.Errorf("txn delete in a read-only txn")
			}
			dr, err := w.deleteRange(ctx, t.RequestDeleteRange)
			if err != nil {
				return 0, fmt.Errorf("txn delete: %w", err)
			}
			out.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = dr
		case *pb.RequestOp_RequestTxn:
			sub := out.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			subN, err := w.execTxn(ctx, t.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			n += subN + 1
			path = path[subN+1:]
		}
	}
	// A nested Txn's header stays empty, as etcd leaves it.
	return n, nil
}

// IsTxnReadOnly reports whether every op of both branches is a Range, so
// the Txn needs no write (etcd serves such Txns without consensus).
func IsTxnReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}
