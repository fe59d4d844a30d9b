package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// etcd's TLS, metrics-listener and client-HTTP flags, from the command
// line, the environment and the YAML file's nested sections.
func TestTLSFlags(t *testing.T) {
	o, err := parseOptions([]string{"--cert-file=/c", "--key-file=/k", "--trusted-ca-file=/ca", "--client-cert-auth",
		"--client-crl-file=/crl", "--peer-auto-tls", "--peer-cert-allowed-cn=peer", "--tls-min-version=TLS1.3",
		"--cipher-suites=A,B", "--listen-metrics-urls=http://127.0.0.1:9", "--self-signed-cert-validity=3"},
		func(k string) string {
			return map[string]string{"ETCD_LISTEN_CLIENT_HTTP_URLS": "http://127.0.0.1:8"}[k]
		}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.ClientTLS.CertFile != "/c" || c.ClientTLS.KeyFile != "/k" || c.ClientTLS.TrustedCAFile != "/ca" || !c.ClientTLS.ClientCertAuth ||
		c.ClientTLS.CRLFile != "/crl" || !c.PeerTLS.AutoTLS || c.PeerTLS.AllowedCN != "peer" || c.TLS.MinVersion != "TLS1.3" ||
		!reflect.DeepEqual(c.TLS.CipherSuites, []string{"A", "B"}) || c.TLS.SelfSignedCertValidity != 3 ||
		!reflect.DeepEqual(c.ListenMetricsURLs, []string{"http://127.0.0.1:9"}) ||
		!reflect.DeepEqual(c.ListenClientHTTPURLs, []string{"http://127.0.0.1:8"}) || len(o.ignored) != 0 {
		t.Fatalf("%+v (ignored %v)", c, o.ignored)
	}

	file := filepath.Join(t.TempDir(), "etcd.yaml")
	if err := os.WriteFile(file, []byte(`
listen-metrics-urls: http://127.0.0.1:7
client-transport-security:
  cert-file: /yc
  key-file: /yk
  client-cert-auth: true
  auto-tls: false
peer-transport-security:
  trusted-ca-file: /pca
  allowed-hostname: h
`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err = parseOptions([]string{"--config-file", file}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c = o.cfg
	if c.ClientTLS.CertFile != "/yc" || c.ClientTLS.KeyFile != "/yk" || !c.ClientTLS.ClientCertAuth ||
		c.PeerTLS.TrustedCAFile != "/pca" || c.PeerTLS.AllowedHostname != "h" || c.ListenMetricsURLs[0] != "http://127.0.0.1:7" {
		t.Fatalf("%+v", c)
	}
}
