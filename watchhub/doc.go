// Package watchhub delivers committed revisions to etcd watchers: etcd's
// mvcc watchable store and the ordering half of its v3rpc watch stream, on
// top of sett's storage.
//
// # Flow
//
// The applier calls Hub.Notify once per durable batch, in revision order,
// before any proposer of the batch is answered. Notify never blocks: for
// every live watcher whose range matches an event it appends one response
// (one revision's events, filtered, prev_kv stripped unless asked for) to
// the watcher's own bounded queue. A Stream (one gRPC Watch stream) owns
// many watchers; its single sender takes responses out with Next, control
// responses (created, canceled) first and watchers' queues round robin.
//
// # Watcher states
//
//	live       in the hub's key index; Notify queues its revisions.
//	catch-up   out of the index; a replay goroutine reads the revision tree
//	           (storage.Store.Events) from the watcher's next revision, one
//	           batch at a time (up to 1000 revisions, as etcd), each batch
//	           queued only when the previous one has been taken, then
//	           rejoins: under the hub lock, once its next revision is past
//	           the newest notified revision, it is indexed again and Notify
//	           skips revisions it already replayed.
//	compacted  its next revision fell below the compaction point: it got
//	           etcd's compacted response and stays registered (as in etcd)
//	           until canceled.
//
// A watcher starting at or below the notified revision starts in catch-up;
// one starting at 0 or in the future starts live (a future one only
// accepts revisions from its start). A live watcher whose queue is full
// (a consumer that stopped reading) drops its queue, remembers only the
// first revision it has not sent, and goes to catch-up: memory stays
// bounded and nothing is lost, duplicated or reordered, and a revision's
// events always travel in one response.
//
// # Progress
//
// RequestProgress (the whole stream, watch ID -1) answers only when every
// watcher of the stream is live and the notified revision has reached its
// start revision, as etcd's progressAll. The answer at revision R must
// follow everything at or below R and precede everything above it, on
// every watcher: a barrier marker goes at the end of each watcher's
// queue, and a watcher whose queue reaches it pauses. The response also
// holds its place among the control responses, so it follows the created
// responses requested before it and precedes those requested after it (a
// client hands it to every watcher it knows). When all markers are
// reached it is sent and the watchers resume. A watcher dropping its queue
// in the meantime voids it (the client asks again, as Kubernetes does
// every 100 ms).
//
// Per-watcher progress_notify responses are queued like events every
// Config.ProgressInterval (etcd's --watch-progress-notify-interval) for
// live watchers that had no events sent since the previous tick.
package watchhub
