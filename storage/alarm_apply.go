package storage

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// alarm activates, deactivates or lists alarms (NOSPACE, CORRUPT).
func (b *batch) alarm(a *pb.AlarmRequest) (Result, error) {
	return Result{Err: fmt.Errorf("storage: alarms are not supported yet")}, nil
}
