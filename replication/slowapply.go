package replication

import (
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// warnSlowApply logs etcd's "apply request took too long" warning for a
// batch whose apply took longer than limit. Entries are applied together,
// so the line names the batch's first request (values and passwords
// redacted, as etcd logs them) and how many the batch held.
func (n *Node) warnSlowApply(took, limit time.Duration, batch []storage.Entry, results []storage.Result) {
	var req *pb.InternalRaftRequest
	var res storage.Result
	for i, e := range batch {
		if e.Req != nil {
			req, res = e.Req, results[i]
			break
		}
	}
	request := ""
	if req != nil {
		request = (&pb.InternalRaftStringer{Request: req}).String()
	}
	attrs := []any{"took", took, "expected-duration", limit, "prefix", "", "request", request,
		"response", responseSize(res.Resp), "entries", len(batch)}
	if res.Err != nil {
		attrs = append(attrs, "error", res.Err.Error())
	}
	n.cfg.Logger.Warn("apply request took too long", attrs...)
}

// responseSize is etcd's "size:N" response summary.
func responseSize(resp any) string {
	if m, ok := resp.(interface{ Size() int }); ok {
		return fmt.Sprintf("size:%d", m.Size())
	}
	return ""
}
