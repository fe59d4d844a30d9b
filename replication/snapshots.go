package replication

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3/raftpb"
)

// snapshots moves store snapshots between members for the transport. A
// raft snapshot carries only its metadata; its data is the sender's whole
// store as of when it is sent, which includes at least every entry up to
// the metadata's index (the store may be further along: apply skips what
// it already holds).
type snapshots struct{ n *Node }

// Open streams the store (Snapshot.WriteTo) through a pipe.
func (s *snapshots) Open(m raftpb.Message) (io.ReadCloser, error) {
	sn, err := s.n.store.Snapshot()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer sn.Close()
		_, err := sn.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// Receive stores the data durably under the snapshot's index, for the
// Ready loop to install when raft hands it the snapshot.
func (s *snapshots) Receive(ctx context.Context, m raftpb.Message, data io.Reader) error {
	final := s.n.receivedPath(m.Snapshot.Metadata)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if fn := s.n.snapObserver.Load(); fn != nil {
		(*fn)(m.From)
	}
	return nil
}

func (n *Node) receivedPath(meta raftpb.SnapshotMetadata) string {
	return filepath.Join(n.walDir(), fmt.Sprintf("snapshot-%016x-%016x.recv", meta.Term, meta.Index))
}

// installReceived loads the received data of meta into the store and
// removes the file.
func (n *Node) installReceived(meta raftpb.SnapshotMetadata) error {
	path := n.receivedPath(meta)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := n.store.Install(f); err != nil {
		return err
	}
	return os.Remove(path)
}
