package etcdapi

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// span is a key interval [begin, end); end "" is unbounded.
type span struct{ begin, end string }

func (s span) contains(k string) bool {
	return s.begin <= k && (s.end == "" || k < s.end)
}

type spans []span

func (ss spans) contains(k string) bool {
	for _, s := range ss {
		if s.contains(k) {
			return true
		}
	}
	return false
}

// checkOverlaps rejects a branch that writes one key twice: two Puts of a
// key, or a Put of a key a DeleteRange of the same branch (or of a nested
// Txn) covers. The two branches of one nested Txn may Put the same key,
// since only one of them runs. It returns the branch's puts and deletes.
func checkOverlaps(ops []*pb.RequestOp) (map[string]struct{}, spans, error) {
	var dels spans
	for _, op := range ops {
		d := op.GetRequestDeleteRange()
		if d == nil {
			continue
		}
		if len(d.RangeEnd) != 0 {
			dels = append(dels, span{string(d.Key), string(d.RangeEnd)})
		} else {
			dels = append(dels, span{string(d.Key), string(d.Key) + "\x00"})
		}
	}

	puts := map[string]struct{}{}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkOverlaps(t.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkOverlaps(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if _, dup := puts[k]; dup || dels.contains(k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, dup := puts[k]; dup {
				if _, fromThen := putsThen[k]; !fromThen {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.contains(k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}

	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, dup := puts[k]; dup || dels.contains(k) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
