package replication

import (
	"context"
	"log/slog"
	"time"

	"github.com/sett-dev/sett/storage"
)

// StartSingle starts a one-member cluster over store (its raft log in
// dataDir/raft, no peer listener: it has no peers) and waits until it
// leads. It is the whole write path of an in-process member, for tests
// and tools; the server adds the peer transport's listener.
func StartSingle(store *storage.Store, dataDir string, log *slog.Logger, observer ApplyObserver) (*Node, error) {
	self := storage.Member{ID: 0x5e77, Name: "single", PeerURLs: []string{"http://127.0.0.1:2380"}}
	n, err := New(Config{
		Self:           self,
		InitialCluster: []storage.Member{self},
		ClusterID:      0x5e77,
		DataDir:        dataDir,
		Store:          store,
		Observer:       observer,
		TickInterval:   100 * time.Millisecond,
		UnsafeNoSync:   store.SyncDisabled(),
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	select {
	case <-n.Ready():
	case <-ctx.Done():
		n.Stop()
		return nil, ctx.Err()
	}
	return n, nil
}
