package etcdapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/coreos/go-semver/semver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/version"
)

// DefaultQuotaBackendBytes is etcd's backend quota when
// --quota-backend-bytes is 0.
const DefaultQuotaBackendBytes = int64(2 << 30)

// QuotaBytes turns --quota-backend-bytes into the effective quota: 0
// means etcd's default, a negative value means no quota (0 here).
func QuotaBytes(flag int64) int64 {
	switch {
	case flag == 0:
		return DefaultQuotaBackendBytes
	case flag < 0:
		return 0
	}
	return flag
}

// MaintenanceConfig is what the Maintenance service needs beyond the
// Server's reader and proposer.
type MaintenanceConfig struct {
	Store *storage.Store
	// Space measures the store; nil measures on every call.
	Space *storage.SpaceMeter
	// QuotaBackendBytes is the --quota-backend-bytes flag.
	QuotaBackendBytes int64
	// Hashes holds the hashes computed at compactions (shared with the
	// interceptor that sees the compactions); nil disables them.
	Hashes *CompactionHashes
	// DefragHook, if set, is called with true when a defragmentation
	// starts and false when it ends (etcd's health notifier).
	DefragHook func(running bool)
	Logger     *slog.Logger
}

// Maintenance is etcd's Maintenance service for a single member, which is
// always the leader.
type Maintenance struct {
	pb.UnimplementedMaintenanceServer
	s   *Server
	cfg MaintenanceConfig
}

// Maintenance builds the Maintenance service.
func (s *Server) Maintenance(cfg MaintenanceConfig) *Maintenance {
	if cfg.Space == nil {
		cfg.Space = storage.NewSpaceMeter(cfg.Store, 0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Maintenance{s: s, cfg: cfg}
}

// Status answers as etcd 3.6's: raft's leader, term, commit and applied
// indexes as this member knows them.
func (m *Maintenance) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	sp := m.cfg.Space.Refresh()
	st := m.cfg.Store
	node := m.s.node
	resp := &pb.StatusResponse{
		Header:           m.s.fill(&pb.ResponseHeader{}),
		Version:          version.Server,
		DbSize:           sp.Total,
		Leader:           node.Leader(),
		RaftIndex:        node.CommittedIndex(),
		RaftTerm:         node.Term(),
		RaftAppliedIndex: node.AppliedIndex(),
		DbSizeInUse:      sp.InUse,
		IsLearner:        node.IsLearner(),
		StorageVersion:   version.Storage,
		// etcd reports the flag as given (negative: no quota), 0 as its default.
		DbSizeQuota:   m.cfg.QuotaBackendBytes,
		DowngradeInfo: &pb.DowngradeInfo{},
	}
	if resp.DbSizeQuota == 0 {
		resp.DbSizeQuota = DefaultQuotaBackendBytes
	}
	if resp.Leader == 0 {
		resp.Errors = append(resp.Errors, rpctypes.ErrNoLeader.Error())
	}
	for _, a := range st.Alarms(pb.AlarmType_NONE) {
		resp.Errors = append(resp.Errors, a.String())
	}
	return resp, nil
}

// Alarm lists, raises or clears alarms. Raising and clearing are commands
// (replicated with the log); listing reads the applied state.
func (m *Maintenance) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	var resp *pb.AlarmResponse
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp = &pb.AlarmResponse{Alarms: m.cfg.Store.Alarms(r.Alarm)}
	case pb.AlarmRequest_ACTIVATE, pb.AlarmRequest_DEACTIVATE:
		out, err := m.s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
			Action: r.Action, MemberID: r.MemberID, Alarm: r.Alarm,
		}})
		if err != nil {
			return nil, err
		}
		resp = out.(*pb.AlarmResponse)
		if r.Action == pb.AlarmRequest_DEACTIVATE && r.Alarm == pb.AlarmType_NOSPACE && len(resp.Alarms) > 0 {
			m.cfg.Logger.Info("NOSPACE alarm cleared", "member-id", r.MemberID)
		}
	default:
		resp = &pb.AlarmResponse{}
	}
	resp.Header = m.s.fill(resp.Header)
	return resp, nil
}

// Defragment reclaims the space compaction freed (see
// storage.Store.Defragment). etcd answers with an empty response.
func (m *Maintenance) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	m.cfg.Logger.Info("starting defragment")
	if m.cfg.DefragHook != nil {
		m.cfg.DefragHook(true)
		defer m.cfg.DefragHook(false)
	}
	start := time.Now()
	// A compaction hash in progress holds a read point from before its
	// compaction, and Badger keeps every version such a point may read:
	// let it finish, or the defragmentation reclaims nothing of it.
	if err := m.cfg.Hashes.wait(ctx); err != nil {
		return nil, toGRPC(err)
	}
	before := m.cfg.Space.Refresh()
	m.cfg.Logger.Info("defragmenting", "current-db-size-bytes", before.Total, "current-db-size-in-use-bytes", before.InUse)
	if err := m.cfg.Store.Defragment(ctx); err != nil {
		m.cfg.Logger.Warn("failed to defragment", "err", err)
		return nil, toGRPC(err)
	}
	after := m.cfg.Space.Refresh()
	m.cfg.Logger.Info("finished defragmenting directory",
		"current-db-size-bytes-diff", after.Total-before.Total, "current-db-size-bytes", after.Total,
		"current-db-size-in-use-bytes-diff", after.InUse-before.InUse, "current-db-size-in-use-bytes", after.InUse,
		"took", time.Since(start))
	m.cfg.Logger.Info("finished defragment", "took", time.Since(start).String(),
		"size-before", before.Total, "size-after", after.Total,
		"size-in-use-before", before.InUse, "size-in-use-after", after.InUse)
	return &pb.DefragmentResponse{}, nil
}

// Hash hashes the whole logical state (see storage.Store.Hash); like
// etcd's, it is meant for tests.
func (m *Maintenance) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	h, rev, err := m.cfg.Store.Hash(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashResponse{Header: m.s.fill(&pb.ResponseHeader{Revision: rev}), Hash: h}, nil
}

// HashKV hashes the MVCC history up to r.Revision with etcd's algorithm
// (see storage.Store.HashKV).
func (m *Maintenance) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	// etcd first answers from the hashes it computed while compacting.
	h, ok, err := m.cfg.Hashes.lookup(ctx, r.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	cur := m.cfg.Store.Rev()
	if !ok {
		if h, cur, err = m.cfg.Store.HashKV(ctx, r.Revision); err != nil {
			return nil, toGRPC(err)
		}
	}
	return &pb.HashKVResponse{
		Header:          m.s.fill(&pb.ResponseHeader{Revision: cur}),
		Hash:            h.Hash,
		CompactRevision: h.CompactRevision,
		HashRevision:    h.Revision,
	}, nil
}

// snapshotChunk is the size of the snapshot's messages, as etcd's.
const snapshotChunk = 32 * 1024

// Snapshot streams a consistent copy of the store (sett's format, see
// storage/snapshot.go) in etcd's framing: chunks with the bytes remaining,
// then one message holding the SHA-256 of everything sent.
func (m *Maintenance) Snapshot(r *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	snap, err := m.cfg.Store.Snapshot()
	if err != nil {
		return toGRPC(err)
	}
	defer snap.Close()
	total := snap.Size()
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	m.cfg.Logger.Info("sending database snapshot to client", "total-bytes", total, "revision", snap.Revision())
	start := time.Now()
	h := sha256.New()
	var sent int64
	for sent < total {
		// gRPC may still hold a sent message: every chunk gets its own buffer.
		buf := make([]byte, snapshotChunk)
		n, err := io.ReadFull(pr, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return toGRPC(err)
		}
		if n == 0 {
			return status.Error(codes.Internal, "snapshot ended early")
		}
		sent += int64(n)
		if err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(total - sent), Blob: buf[:n], Version: version.Storage}); err != nil {
			return toGRPC(err)
		}
		h.Write(buf[:n])
	}
	if err := srv.Send(&pb.SnapshotResponse{Blob: h.Sum(nil), Version: version.Storage}); err != nil {
		return toGRPC(err)
	}
	m.cfg.Logger.Info("sent database snapshot to client", "total-bytes", total, "took", time.Since(start).String())
	return nil
}

// MoveLeader hands leadership to a voting member; only the leader can.
func (m *Maintenance) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := m.s.node.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MoveLeaderResponse{}, nil
}

// Downgrade validates a downgrade target as etcd does (the cluster version
// less one minor) and cancels as etcd does (always successfully), but
// refuses to enable one: sett has no older storage format to go back to.
func (m *Maintenance) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	switch r.Action {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		target, err := downgradeTarget(r.Version)
		if err != nil {
			return nil, err
		}
		cv := semver.New(version.Cluster)
		if target.Major != cv.Major || target.Minor != cv.Minor-1 {
			return nil, rpctypes.ErrGRPCInvalidDowngradeTargetVersion
		}
		if r.Action == pb.DowngradeRequest_ENABLE {
			return nil, status.Error(codes.FailedPrecondition, "sett: downgrade is not supported (sett's storage has no older format; restore a snapshot into a new member instead)")
		}
	case pb.DowngradeRequest_CANCEL:
	default:
		return nil, status.Error(codes.Unknown, "etcdserver: unknown method")
	}
	return &pb.DowngradeResponse{Header: m.s.fill(&pb.ResponseHeader{}), Version: version.ClusterMinor}, nil
}

// downgradeTarget parses a target version as etcd does: "X.Y.Z" or "X.Y",
// of which only major and minor count.
func downgradeTarget(v string) (*semver.Version, error) {
	ver, err := semver.NewVersion(v)
	if err != nil {
		if ver, err = semver.NewVersion(v + ".0"); err != nil {
			return nil, rpctypes.ErrGRPCWrongDowngradeVersionFormat
		}
	}
	return &semver.Version{Major: ver.Major, Minor: ver.Minor}, nil
}

// maxCompactionHashes is how many compaction hashes etcd keeps.
const maxCompactionHashes = 10

// CompactionHashes are the hashes etcd computes of the history at each
// compaction point while it compacts (with the previous compaction point
// as the hash's compact revision), and answers HashKV at exactly those
// revisions with, also after later compactions: the last ten, in memory.
type CompactionHashes struct {
	// order serializes compactions, so that the previous compaction point
	// is known.
	order   sync.Mutex
	mu      sync.Mutex
	hashes  []storage.KVHash
	pending map[int64]chan struct{}
}

// NewCompactionHashes returns an empty set.
func NewCompactionHashes() *CompactionHashes {
	return &CompactionHashes{pending: map[int64]chan struct{}{}}
}

// compact runs a Compact call (do) and, if it succeeds, hashes the history
// at its revision from a read point opened before it applied.
func (c *CompactionHashes) compact(st *storage.Store, rev int64, do func() (any, error)) (any, error) {
	if c == nil {
		return do()
	}
	c.order.Lock()
	defer c.order.Unlock()
	prev := st.CompactRev()
	hp := st.OpenHashPoint()
	done := make(chan struct{})
	c.mu.Lock()
	c.pending[rev] = done
	c.mu.Unlock()
	resp, err := do()
	if err != nil {
		hp.Close()
		c.mu.Lock()
		delete(c.pending, rev)
		c.mu.Unlock()
		close(done)
		return resp, err
	}
	go func() {
		h, err := hp.HashCompaction(context.Background(), rev, prev)
		hp.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		if err == nil {
			c.hashes = append(c.hashes, h)
			sort.Slice(c.hashes, func(i, j int) bool { return c.hashes[i].Revision < c.hashes[j].Revision })
			if len(c.hashes) > maxCompactionHashes {
				c.hashes = c.hashes[len(c.hashes)-maxCompactionHashes:]
			}
		}
		delete(c.pending, rev)
		close(done)
	}()
	return resp, nil
}

// wait returns once every compaction hash being computed is done.
func (c *CompactionHashes) wait(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	pending := make([]chan struct{}, 0, len(c.pending))
	for _, done := range c.pending {
		pending = append(pending, done)
	}
	c.mu.Unlock()
	for _, done := range pending {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// lookup returns the compaction hash at rev, waiting for one being
// computed.
func (c *CompactionHashes) lookup(ctx context.Context, rev int64) (storage.KVHash, bool, error) {
	if c == nil || rev <= 0 {
		return storage.KVHash{}, false, nil
	}
	c.mu.Lock()
	done := c.pending[rev]
	c.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return storage.KVHash{}, false, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hashes {
		if h.Revision == rev {
			return h, true, nil
		}
	}
	return storage.KVHash{}, false, nil
}
