package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Workload runs concurrent clients doing random operations on NumKeys keys
// under Prefix, every one recorded in History. Values are unique, so that
// every read and watch event names the write it saw.
type Workload struct {
	History *History
	Prefix  string
	// OpTimeout bounds one operation; past it the outcome is unknown.
	OpTimeout time.Duration

	ids    atomic.Int64 // porcupine client ids: a new one after each unknown outcome
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Key returns the name of key i.
func (w *Workload) Key(i int) string { return w.Prefix + "k" + strconv.Itoa(i) }

// Start runs one worker per client until Stop.
func (w *Workload) Start(ctx context.Context, clients []*clientv3.Client) {
	ctx, w.cancel = context.WithCancel(ctx)
	if w.OpTimeout == 0 {
		w.OpTimeout = 5 * time.Second
	}
	for i, cli := range clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.run(ctx, i, cli)
		}()
	}
}

// Stop ends the workers and waits for their last operations.
func (w *Workload) Stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *Workload) run(ctx context.Context, worker int, cli *clientv3.Client) {
	rng := rand.New(rand.NewPCG(uint64(worker), uint64(time.Now().UnixNano())))
	id := int(w.ids.Add(1))
	var modRev [NumKeys]int64 // last seen, for CAS expectations
	for seq := 0; ctx.Err() == nil; seq++ {
		in := w.pick(rng, worker, seq, modRev)
		call := w.History.Call()
		out := w.Do(cli, in)
		w.History.Record(id, in, call, out)
		if out.Unknown {
			id = int(w.ids.Add(1))
			select { // back off: the member may be down for a while
			case <-ctx.Done():
			case <-time.After(time.Duration(200+rng.IntN(300)) * time.Millisecond):
			}
			continue
		}
		switch {
		case in.Kind == OpGet || (in.Kind == OpCAS && !out.Succeeded):
			modRev[in.Key] = out.ModRev
		case in.Kind == OpPut || in.Kind == OpCAS:
			modRev[in.Key] = out.Rev
		case in.Kind == OpPutPair:
			modRev[in.Key], modRev[in.Key2] = out.Rev, out.Rev
		case in.Kind == OpDelete:
			modRev[in.Key] = 0
		}
	}
}

func (w *Workload) pick(rng *rand.Rand, worker, seq int, modRev [NumKeys]int64) Input {
	in := Input{Key: rng.IntN(NumKeys), Value: fmt.Sprintf("w%d.%d", worker, seq)}
	switch r := rng.IntN(100); {
	case r < 30:
		in.Kind, in.Value = OpGet, ""
	case r < 60:
		in.Kind = OpPut
	case r < 80:
		in.Kind, in.ExpectModRev = OpCAS, modRev[in.Key]
	case r < 88:
		in.Kind, in.Value = OpDelete, ""
	default:
		in.Kind = OpPutPair
		in.Key2 = (in.Key + 1 + rng.IntN(NumKeys-1)) % NumKeys
		in.Value2 = in.Value + "b"
	}
	return in
}

// Do performs in with cli and returns its outcome; any error makes the
// outcome unknown.
func (w *Workload) Do(cli *clientv3.Client, in Input) Output {
	ctx, cancel := context.WithTimeout(context.Background(), w.OpTimeout)
	defer cancel()
	key := w.Key(in.Key)
	switch in.Kind {
	case OpGet:
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return Output{Unknown: true}
		}
		out := Output{Rev: resp.Header.Revision}
		if len(resp.Kvs) == 1 {
			out.Exists, out.Value, out.ModRev = true, string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
		}
		return out
	case OpPut:
		resp, err := cli.Put(ctx, key, in.Value)
		if err != nil {
			return Output{Unknown: true}
		}
		return Output{Rev: resp.Header.Revision}
	case OpDelete:
		resp, err := cli.Delete(ctx, key)
		if err != nil {
			return Output{Unknown: true}
		}
		return Output{Rev: resp.Header.Revision, Deleted: resp.Deleted}
	case OpCAS:
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", in.ExpectModRev)).
			Then(clientv3.OpPut(key, in.Value)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return Output{Unknown: true}
		}
		out := Output{Rev: resp.Header.Revision, Succeeded: resp.Succeeded}
		if !resp.Succeeded {
			if len(resp.Responses) != 1 || resp.Responses[0].GetResponseRange() == nil {
				return Output{Rev: -1} // malformed: no model state accepts it
			}
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
				out.Exists, out.Value, out.ModRev = true, string(kvs[0].Value), kvs[0].ModRevision
			}
		}
		return out
	case OpPutPair:
		resp, err := cli.Txn(ctx).Then(clientv3.OpPut(key, in.Value), clientv3.OpPut(w.Key(in.Key2), in.Value2)).Commit()
		if err != nil {
			return Output{Unknown: true}
		}
		if !resp.Succeeded {
			return Output{Rev: -1}
		}
		return Output{Rev: resp.Header.Revision}
	}
	panic(fmt.Sprintf("clustertest: unknown operation kind %v", in.Kind))
}
