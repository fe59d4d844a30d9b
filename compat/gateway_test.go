package compat

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
)

// gwTarget is one server's gateway, as a client reaches it.
type gwTarget struct {
	kind string
	base string // scheme://host:port
	cli  *http.Client
	proc *testproc.Proc
	ca   string // the CA file (with TLS)
}

// gwReply is an HTTP answer reduced to what is compared.
type gwReply struct {
	status int
	ctype  string
	header string // the header names and values, but Date and Content-Length
	body   string // canonical (see canonJSON)
}

// gwCase is how the servers are reached.
type gwCase struct {
	name   string
	tls    bool
	mutual bool // client certificates required
	h2     bool // HTTP/2 (over TLS) instead of HTTP/1.1
	args   []string
}

// TestGatewayCompat sends etcd's gRPC-gateway requests (JSON, base64
// bytes) to etcd and sett over http://, https:// and mutual TLS, and
// compares status, content type and body (IDs, terms, sizes and raft
// indexes normalised; revisions compared as is, both servers starting
// empty and receiving the same requests).
func TestGatewayCompat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	for _, c := range []gwCase{
		{name: "http"},
		{name: "disabled", args: []string{"--enable-grpc-gateway=false"}},
		{name: "https", tls: true},
		{name: "https-h2-mtls", tls: true, mutual: true, h2: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			etcd, sett := startGatewayPair(t, c)
			if len(c.args) > 0 {
				compareDisabled(t, etcd, sett)
				return
			}
			runGatewayScenario(t, etcd, sett)
			if c.tls && !c.mutual {
				curlCompare(t, etcd, sett)
			}
		})
	}
}

// startGatewayPair starts etcd and sett with the case's URLs and
// certificates, and waits until both gateways answer a range.
func startGatewayPair(t *testing.T, c gwCase) (etcd, sett *gwTarget) {
	t.Helper()
	dir := t.TempDir()
	args := c.args
	tr := &http.Transport{}
	scheme, caFile := "http", ""
	if c.tls {
		scheme = "https"
		ca := newCA(t, dir, "gw-ca")
		// etcd's gateway dials its own port presenting the server's
		// certificate: with client certificates required, it must be good
		// for client authentication too.
		srvCert, srvKey := ca.issue(t, dir, "gw-server", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		args = append(args, "--cert-file="+srvCert, "--key-file="+srvKey)
		pool := x509.NewCertPool()
		pool.AddCert(ca.cert)
		cfg := &tls.Config{RootCAs: pool}
		if c.mutual {
			args = append(args, "--trusted-ca-file="+ca.file, "--client-cert-auth")
			cliCert, cliKey := ca.issue(t, dir, "gw-client", x509.ExtKeyUsageClientAuth)
			pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		tr.TLSClientConfig = cfg
		tr.ForceAttemptHTTP2 = c.h2
		if !c.h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		caFile = ca.file
	}
	t.Cleanup(tr.CloseIdleConnections)
	start := func(kind string) *gwTarget {
		port := testproc.FreePort(t)
		url := fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		opts := testproc.Options{Name: "gw", ClientPort: port, InitialCluster: "gw=http://127.0.0.1:2380", ExtraArgs: append([]string{
			"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
			"--initial-advertise-peer-urls=http://127.0.0.1:2380", "--initial-cluster-token=sett-gw", "--log-level=warn",
		}, args...)}
		var p *testproc.Proc
		if kind == "etcd" {
			p = testproc.StartEtcd(t, opts)
		} else {
			p = testproc.StartSett(t, opts)
		}
		g := &gwTarget{kind: kind, base: url, cli: &http.Client{Transport: tr, Timeout: 15 * time.Second}, proc: p, ca: caFile}
		readyPath := "/v3/kv/range"
		if len(c.args) > 0 {
			readyPath = "/health"
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := g.post(readyPath, `{"key":"cmVhZHk="}`)
			if readyPath == "/health" {
				r, err = g.get(readyPath)
			}
			if err == nil && r.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s gateway not serving: %v %+v", kind, err, r)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if c.tls {
			want := map[bool]int{false: 1, true: 2}[c.h2]
			resp, err := g.cli.Get(url + "/version")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != want {
				t.Fatalf("%s: served over %s, want HTTP/%d", kind, resp.Proto, want)
			}
		}
		return g
	}
	return start("etcd"), start("sett")
}

func (g *gwTarget) post(path, body string) (gwReply, error) {
	req, err := http.NewRequest(http.MethodPost, g.base+path, strings.NewReader(body))
	if err != nil {
		return gwReply{}, err
	}
	return g.do(req)
}

func (g *gwTarget) get(path string) (gwReply, error) {
	req, err := http.NewRequest(http.MethodGet, g.base+path, nil)
	if err != nil {
		return gwReply{}, err
	}
	return g.do(req)
}

// compareDisabled checks that without the gateway /v3/ paths are not
// found, and the other endpoints still served.
func compareDisabled(t *testing.T, etcd, sett *gwTarget) {
	for _, path := range []string{"/v3/kv/range", "/v3/watch", "/v3beta/kv/put", "/version"} {
		var got [2]gwReply
		for i, g := range []*gwTarget{etcd, sett} {
			var err error
			if got[i], err = g.post(path, `{"key":"YQ=="}`); err != nil {
				t.Fatalf("%s: %s: %v", g.kind, path, err)
			}
		}
		if got[0] != got[1] {
			t.Errorf("%s without the gateway:\netcd: %+v\nsett: %+v", path, got[0], got[1])
		}
		if strings.HasPrefix(path, "/v3") && got[0].status != http.StatusNotFound {
			t.Errorf("etcd answers %s without its gateway: %+v", path, got[0])
		}
	}
}

func (g *gwTarget) do(req *http.Request) (gwReply, error) {
	resp, err := g.cli.Do(req)
	if err != nil {
		return gwReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return gwReply{}, err
	}
	return gwReply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), header: headerString(resp.Header), body: canonBody(b)}, nil
}

// headerString is h's names and values, sorted, but Date and
// Content-Length.
func headerString(h http.Header) string {
	var hdr []string
	for name, vs := range h {
		if name != "Date" && name != "Content-Length" {
			hdr = append(hdr, name+": "+strings.Join(vs, ", "))
		}
	}
	sort.Strings(hdr)
	return strings.Join(hdr, "; ")
}

// canonBody is canonJSON of b, or b itself when it is not JSON.
func canonBody(b []byte) string {
	var out strings.Builder
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n := 0
	for {
		if err := canonJSON(dec, &out, ""); err == io.EOF {
			break
		} else if err != nil {
			return "RAW:" + string(b)
		}
		n++
		out.WriteByte('\n')
	}
	if n == 0 {
		return "RAW:" + string(b)
	}
	return out.String()
}

// volatileKeys are the fields whose values differ between two servers
// with the same history: identities, raft positions, sizes, the URLs the
// servers listen on.
var volatileKeys = map[string]bool{
	"cluster_id": true, "member_id": true, "raft_term": true, "leader": true, "raftIndex": true,
	"raftTerm": true, "raftAppliedIndex": true, "dbSize": true, "dbSizeInUse": true,
	"peerURLs": true, "clientURLs": true,
}

// canonJSON writes the next JSON value of dec compactly, in its order,
// with volatile values replaced by "*". parent is the key holding the
// value (members' IDs and remaining TTLs are volatile too).
func canonJSON(dec *json.Decoder, out *strings.Builder, parent string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			out.WriteByte('{')
			first := true
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k := kt.(string)
				if !first {
					out.WriteByte(',')
				}
				first = false
				fmt.Fprintf(out, "%q:", k)
				if volatileKeys[k] || (k == "ID" && (parent == "members" || parent == "member")) {
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						return err
					}
					out.WriteString(`"*"`)
					continue
				}
				if err := canonJSON(dec, out, k); err != nil {
					return err
				}
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			first := true
			for dec.More() {
				if !first {
					out.WriteByte(',')
				}
				first = false
				if err := canonJSON(dec, out, parent); err != nil {
					return err
				}
			}
			out.WriteByte(']')
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case string:
		fmt.Fprintf(out, "%q", v)
	case json.Number:
		out.WriteString(v.String())
	case bool:
		fmt.Fprint(out, v)
	case nil:
		out.WriteString("null")
	}
	return nil
}

var remainingTTL = regexp.MustCompile(`"TTL":"[0-9]+"`)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// gwStep is one request of the scenario.
type gwStep struct {
	name, method, path, body string
}

func runGatewayScenario(t *testing.T, etcd, sett *gwTarget) {
	k := func(s string) string { return b64("gw/" + s) }
	post := func(name, path, body string) gwStep { return gwStep{name, http.MethodPost, path, body} }
	steps := []gwStep{
		post("put a", "/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, k("a"), b64("1"))),
		post("put b with prev_kv", "/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"prev_kv":true}`, k("b"), b64("2"))),
		post("overwrite a with prev_kv", "/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"prev_kv":true}`, k("a"), b64("3"))),
		post("range a", "/v3/kv/range", fmt.Sprintf(`{"key":%q}`, k("a"))),
		post("range prefix", "/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q}`, k(""), b64("gw0"))),
		post("range count only", "/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q,"count_only":true}`, k(""), b64("gw0"))),
		post("range limit sorted", "/v3/kv/range", fmt.Sprintf(`{"key":%q,"range_end":%q,"limit":1,"sort_order":"DESCEND","sort_target":"MOD"}`, k(""), b64("gw0"))),
		post("range missing", "/v3/kv/range", fmt.Sprintf(`{"key":%q}`, k("none"))),
		post("txn", "/v3/kv/txn", fmt.Sprintf(`{"compare":[{"key":%q,"result":"EQUAL","target":"VALUE","value":%q}],`+
			`"success":[{"request_put":{"key":%q,"value":%q}},{"request_range":{"key":%q}}],"failure":[{"request_delete_range":{"key":%q}}]}`,
			k("a"), b64("3"), k("c"), b64("4"), k("c"), k("b"))),
		post("txn failing", "/v3/kv/txn", fmt.Sprintf(`{"compare":[{"key":%q,"result":"GREATER","target":"VERSION","version":"9"}],`+
			`"success":[{"request_put":{"key":%q,"value":%q}}],"failure":[{"request_delete_range":{"key":%q,"prev_kv":true}}]}`,
			k("a"), k("x"), b64("x"), k("b"))),
		post("deleterange prev_kv", "/v3/kv/deleterange", fmt.Sprintf(`{"key":%q,"prev_kv":true}`, k("c"))),
		post("deleterange missing", "/v3/kv/deleterange", fmt.Sprintf(`{"key":%q}`, k("c"))),
		post("compaction", "/v3/kv/compaction", `{"revision":"3","physical":true}`),
		post("range compacted revision", "/v3/kv/range", fmt.Sprintf(`{"key":%q,"revision":"2"}`, k("a"))),
		post("range future revision", "/v3/kv/range", fmt.Sprintf(`{"key":%q,"revision":"999"}`, k("a"))),
		post("compaction again", "/v3/kv/compaction", `{"revision":"3"}`),
		post("put empty key", "/v3/kv/put", `{"value":"eA=="}`),
		post("put over --max-request-bytes", "/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, k("big"), b64(strings.Repeat("x", 2<<20)))),
		post("bad JSON", "/v3/kv/range", `{"key":`),
		post("wrong field type", "/v3/kv/range", `{"key":5}`),
		post("unknown field", "/v3/kv/range", fmt.Sprintf(`{"key":%q,"nonsense":1}`, k("a"))),
		post("bad base64", "/v3/kv/range", `{"key":"!!"}`),
		post("empty body", "/v3/kv/range", ``),
		post("lease grant", "/v3/lease/grant", `{"TTL":"60","ID":"4242"}`),
		post("lease grant duplicate", "/v3/lease/grant", `{"TTL":"60","ID":"4242"}`),
		post("put with lease", "/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"lease":"4242"}`, k("l"), b64("l"))),
		post("put with missing lease", "/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q,"lease":"777"}`, k("m"), b64("m"))),
		post("lease timetolive keys", "/v3/lease/timetolive", `{"ID":"4242","keys":true}`),
		post("lease timetolive (kv path)", "/v3/kv/lease/timetolive", `{"ID":"4242"}`),
		post("lease leases", "/v3/lease/leases", `{}`),
		post("lease leases (kv path)", "/v3/kv/lease/leases", `{}`),
		post("lease keepalive", "/v3/lease/keepalive", `{"ID":"4242"}`),
		post("lease revoke", "/v3/lease/revoke", `{"ID":"4242"}`),
		post("lease revoke missing", "/v3/lease/revoke", `{"ID":"4242"}`),
		post("lease timetolive missing", "/v3/lease/timetolive", `{"ID":"4242"}`),
		post("range after revoke", "/v3/kv/range", fmt.Sprintf(`{"key":%q}`, k("l"))),
		post("member list", "/v3/cluster/member/list", `{}`),
		post("member list linearizable", "/v3/cluster/member/list", `{"linearizable":true}`),
		post("status", "/v3/maintenance/status", `{}`),
		post("alarm list", "/v3/maintenance/alarm", `{"action":"GET"}`),
		post("hashkv bad revision", "/v3/maintenance/hashkv", `{"revision":"1"}`),
		post("v3beta prefix", "/v3beta/kv/range", fmt.Sprintf(`{"key":%q}`, k("a"))),
		post("unknown path", "/v3/kv/nothing", `{}`),
		{"GET on a POST path", http.MethodGet, "/v3/kv/range", ""},
		post("outside /v3", "/v4/kv/range", `{}`),
	}
	for _, s := range steps {
		var got [2]gwReply
		for i, g := range []*gwTarget{etcd, sett} {
			req, err := http.NewRequest(s.method, g.base+s.path, strings.NewReader(s.body))
			if err != nil {
				t.Fatal(err)
			}
			if got[i], err = g.do(req); err != nil {
				t.Fatalf("%s: %s: %v", s.name, g.kind, err)
			}
		}
		if strings.Contains(s.path, "timetolive") {
			// The remaining TTL may be read on either side of a second.
			for i := range got {
				got[i].body = remainingTTL.ReplaceAllString(got[i].body, `"TTL":"*"`)
			}
		}
		if got[0] != got[1] {
			t.Errorf("%s: %s %s %s\netcd: %d %s %s\nsett: %d %s %s", s.name, s.method, s.path, s.body,
				got[0].status, got[0].header, got[0].body, got[1].status, got[1].header, got[1].body)
		}
	}
	compareWatch(t, etcd, sett, k)
}

// compareWatch opens a /v3/watch stream on each server (the body holds
// one create request and ends, as with curl -d), puts a key through the
// gateway, and compares the stream's lines: the creation, then the event.
func compareWatch(t *testing.T, etcd, sett *gwTarget, k func(string) string) {
	var lines [2][]string
	for i, g := range []*gwTarget{etcd, sett} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		body := fmt.Sprintf(`{"create_request":{"key":%q,"prev_kv":true}}`, k("w"))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/v3/watch", strings.NewReader(body))
		resp, err := g.cli.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s: watch: %v", g.kind, err)
		}
		rd := bufio.NewReader(resp.Body)
		read := func() string {
			line, err := rd.ReadBytes('\n')
			if err != nil && len(line) == 0 {
				return "ERROR: " + err.Error()
			}
			return canonBody(line)
		}
		lines[i] = append(lines[i], fmt.Sprintf("%d %s", resp.StatusCode, headerString(resp.Header)), read())
		for _, v := range []string{"1", "2"} {
			if r, err := g.post("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, k("w"), b64(v))); err != nil || r.status != 200 {
				t.Fatalf("%s: put: %v %+v", g.kind, err, r)
			}
			lines[i] = append(lines[i], read())
		}
		cancel()
		resp.Body.Close()
	}
	for j := range lines[0] {
		if lines[0][j] != lines[1][j] {
			t.Errorf("watch line %d:\netcd: %s\nsett: %s", j, lines[0][j], lines[1][j])
		}
	}
	if !strings.Contains(lines[0][3], `"events"`) {
		t.Errorf("etcd sent no event: %v", lines[0])
	}
}

// curlCompare sends requests with the curl binary, when installed, and
// compares the bodies.
func curlCompare(t *testing.T, etcd, sett *gwTarget) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Log("no curl binary; curl requests not sent")
		return
	}
	for _, c := range []struct{ path, body string }{
		{"/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, b64("curl"), b64("v"))},
		{"/v3/kv/range", fmt.Sprintf(`{"key":%q}`, b64("curl"))},
		{"/v3/kv/range", `{"key":`},
		{"/v3/maintenance/status", `{}`},
	} {
		var got [2]string
		for i, g := range []*gwTarget{etcd, sett} {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			args := []string{"-sS", "--max-time", "10", "-X", "POST", "-d", c.body, g.base + c.path, "-w", "\n%{http_code}"}
			if strings.HasPrefix(g.base, "https") {
				args = append(args, "--cacert", g.ca)
			}
			out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("%s: curl %v: %v: %s", g.kind, args, err, out)
			}
			cut := strings.LastIndexByte(string(out), '\n')
			got[i] = string(out[cut+1:]) + " " + canonBody(out[:cut])
		}
		if got[0] != got[1] {
			t.Errorf("curl %s %s:\netcd: %s\nsett: %s", c.path, c.body, got[0], got[1])
		}
	}
}
