package storagesuite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"

	"k8s.io/apimachinery/pkg/api/apitesting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/utils/clock"
)

// The etcd3 package's tests store objects under this transformer prefix,
// with the example API group's v1 codec.
const transformerPrefix = "test!"

// etcdMaxLimit is the largest page the etcd3 store asks for (its maxLimit).
const etcdMaxLimit = 10000

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	utilruntime.Must(example.AddToScheme(scheme))
	utilruntime.Must(examplev1.AddToScheme(scheme))
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
}

// testStore is the etcd3 store under test with the hooks the suite needs
// to swap its value transformer (the etcd3 tests reach into the store's
// private fields for this; here the store is built over a transformer
// that can be switched).
type testStore struct {
	storage.Interface
	codec       runtime.Codec
	transformer *switchableTransformer
	client      *kubernetes.Client
}

var (
	_ storagetesting.InterfaceWithPrefixTransformer  = (*testStore)(nil)
	_ storagetesting.InterfaceWithCorruptTransformer = (*testStore)(nil)
)

// prefixTransformer is the store's current transformer, which outside of
// an UpdatePrefixTransformer window is the PrefixTransformer it was built with.
func (s *testStore) prefixTransformer() *storagetesting.PrefixTransformer {
	return s.transformer.get().(*storagetesting.PrefixTransformer)
}

// UpdatePrefixTransformer installs modifier(copy of the current prefix
// transformer) until the returned function is called.
func (s *testStore) UpdatePrefixTransformer(modifier storagetesting.PrefixTransformerModifier) func() {
	original := s.prefixTransformer()
	modified := *original
	s.transformer.set(modifier(&modified))
	return func() { s.transformer.set(original) }
}

// CorruptTransformer makes every read from storage fail as a corrupt
// object (the error the etcd3 package's corrupt-object handling produces
// for an untransformable value) until the returned function is called.
func (s *testStore) CorruptTransformer() func() {
	original := s.transformer.get()
	s.transformer.set(etcd3.WithCorruptObjErrorHandlingTransformer(&failingReads{Transformer: original}))
	return func() { s.transformer.set(original) }
}

// failingReads fails every TransformFromStorage, as flipped bits would.
type failingReads struct {
	value.Transformer
}

func (f *failingReads) TransformFromStorage(context.Context, []byte, value.Context) ([]byte, bool, error) {
	return nil, true, errors.New("bits flipped")
}

// switchableTransformer delegates to a transformer that tests may replace
// while the store and its watchers run.
type switchableTransformer struct {
	mu  sync.RWMutex
	cur value.Transformer
}

func (s *switchableTransformer) get() value.Transformer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

func (s *switchableTransformer) set(t value.Transformer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = t
}

func (s *switchableTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	return s.get().TransformFromStorage(ctx, data, dataCtx)
}

func (s *switchableTransformer) TransformToStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, error) {
	return s.get().TransformToStorage(ctx, data, dataCtx)
}

type setupOptions struct {
	server         ServerOptions
	prefix         string
	resourcePrefix string
	leaseConfig    etcd3.LeaseManagerConfig
}

type setupOption func(*setupOptions)

func withWatchProgressNotifyInterval(d time.Duration) setupOption {
	return func(o *setupOptions) { o.server.WatchProgressNotifyInterval = d }
}

// testSetup starts a fresh server and builds an etcd3 store over it the way
// the etcd3 package's testSetup does: example Pods, codec for example/v1,
// prefix transformer "test!", no compaction loop, lease reuse of 1 second,
// and a client whose KV and Kubernetes interfaces record calls.
func testSetup(t *testing.T, opts ...setupOption) (context.Context, *testStore, *kubernetes.Client) {
	t.Helper()
	leaseConfig := etcd3.NewDefaultLeaseManagerConfig()
	// The suite's waits are bounded by 30s (wait.ForeverTestTimeout).
	leaseConfig.ReuseDurationSeconds = 1
	o := setupOptions{resourcePrefix: "/pods/", leaseConfig: leaseConfig}
	for _, opt := range opts {
		opt(&o)
	}
	srv := StartServer(t, o.server)
	client := newClient(t, srv.Endpoint)

	codec := apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion)
	versioner := storage.APIObjectVersioner{}
	transformer := &switchableTransformer{cur: storagetesting.NewPrefixTransformer([]byte(transformerPrefix), false)}
	compactor := etcd3.NewCompactor(client.Client, 0, clock.RealClock{}, nil)
	t.Cleanup(compactor.Stop)
	s, err := etcd3.New(client, compactor, codec,
		func() runtime.Object { return &example.Pod{} },
		func() runtime.Object { return &example.PodList{} },
		o.prefix, o.resourcePrefix, schema.GroupResource{Resource: "pods"},
		transformer, o.leaseConfig, etcd3.NewDefaultDecoder(codec, versioner), versioner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return context.Background(), &testStore{Interface: s, codec: codec, transformer: transformer, client: client}, client
}

// newClient connects as the etcd3 tests' embedded server helper does, with
// the KV and Kubernetes interfaces wrapped in the suite's call recorders.
func newClient(t *testing.T, endpoint string) *kubernetes.Client {
	t.Helper()
	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	client.KV = storagetesting.NewKVRecorder(client.KV)
	client.Kubernetes = storagetesting.NewKubernetesRecorder(client.Kubernetes)
	return client
}

// checkStorageInvariants reads key straight from the server: the value must
// carry the transformer prefix and decode to a Pod stored without a
// resource version or self link.
func checkStorageInvariants(client *clientv3.Client, codec runtime.Codec) storagetesting.KeyValidation {
	return func(ctx context.Context, t *testing.T, key string) {
		resp, err := client.KV.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get %q: %v", key, err)
		}
		if len(resp.Kvs) == 0 {
			t.Fatalf("expecting non empty result on key: %s", key)
		}
		decoded, err := runtime.Decode(codec, resp.Kvs[0].Value[len(transformerPrefix):])
		if err != nil {
			t.Fatalf("expecting successful decode of object from %v\n%v", err, string(resp.Kvs[0].Value))
		}
		obj := decoded.(*example.Pod)
		if obj.ResourceVersion != "" {
			t.Errorf("stored object should have empty resource version")
		}
		if obj.SelfLink != "" {
			t.Errorf("stored output should have empty selfLink")
		}
	}
}

// checkStorageCallsInvariants checks how many objects a paged list read and
// how many range requests it took: page sizes double after a short page, up
// to the store's maximum.
func checkStorageCallsInvariants(transformer *storagetesting.PrefixTransformer, recorder *storagetesting.KVRecorder) storagetesting.CallsValidation {
	return func(t *testing.T, pageSize, estimatedProcessedObjects uint64) {
		if reads := transformer.GetReadsAndReset(); reads != estimatedProcessedObjects {
			t.Errorf("unexpected reads: %d, expected: %d", reads, estimatedProcessedObjects)
		}
		estimatedGetCalls := uint64(1)
		if pageSize != 0 {
			currLimit := pageSize
			for sum := uint64(1); sum < estimatedProcessedObjects; {
				currLimit = min(currLimit*2, etcdMaxLimit)
				sum += currLimit
				estimatedGetCalls++
			}
		}
		if reads := recorder.GetReadsAndReset(); reads != estimatedGetCalls {
			t.Fatalf("unexpected reads: %d, want: %d", reads, estimatedGetCalls)
		}
	}
}

// compactStorage compacts to the given resource version with the
// apiserver's own compaction transaction, retrying once with the version
// the first attempt reported; with ListFromCacheSnapshot on it waits for
// the store to observe the new compacted revision.
func compactStorage(s storage.Interface, client *clientv3.Client) storagetesting.Compaction {
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		rv, err := storage.APIObjectVersioner{}.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		var currentVersion int64
		currentVersion, _, _, err = etcd3.Compact(ctx, client, currentVersion, int64(rv))
		if err != nil {
			_, _, _, err = etcd3.Compact(ctx, client, currentVersion, int64(rv))
		}
		if err != nil {
			t.Fatal(err)
		}
		if !utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
			return
		}
		for s.CompactRevision() != int64(rv) {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// increaseRVFunc bumps the revision with a write outside the store's prefix.
func increaseRVFunc(client *clientv3.Client) storagetesting.IncreaseRVFunc {
	return func(ctx context.Context, t *testing.T) int64 {
		resp, err := client.KV.Put(ctx, "increaseRV", "ok")
		if err != nil {
			t.Fatalf("Could not update increaseRV: %v", err)
		}
		return resp.Header.Revision
	}
}

// pathPrefix is the key prefix the etcd3 store puts before every key for a
// configured storage prefix: "/" + prefix, ending in "/".
func pathPrefix(prefix string) string {
	p := path.Join("/", prefix)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// startClient starts a fresh server and returns a plain client to it.
func startClient(t *testing.T) *clientv3.Client {
	t.Helper()
	return newClient(t, StartServer(t, ServerOptions{}).Endpoint).Client
}

// TestMain refuses an unknown target before any test starts, and says
// which server the suite runs against.
func TestMain(m *testing.M) {
	target, err := Target()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "storagesuite: running against %s\n", target)
	os.Exit(m.Run())
}
